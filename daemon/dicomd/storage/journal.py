"""The write journal: which stored files may lack an index row after a crash.

A file is written to its final place *before* the index transaction that records it commits.
Just before writing it, its UUID is appended to this process's journal (a plain ``write`` to
an append-only file, which a killed process cannot lose). Once the transaction commits or
the file is deleted again, the entry is settled. At start-up, before anything else writes,
the main process checks every entry left by earlier processes against the index and deletes
the files that have no row. Journals rotate, and a full journal whose entries are all
settled is deleted, so they stay small.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path


class WriteJournal:
    """This process's journal of files being written."""

    ENTRIES_PER_FILE = 10_000

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._serial = 0
        self._outstanding: dict[str, int] = {}
        self._fd = -1
        self._name = ""
        self._written = 0

    def _open_next(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._forget_if_done(self._name, full=True)
        self._serial += 1
        self._name = f"{os.getpid()}-{os.urandom(4).hex()}-{self._serial}.log"
        self._fd = os.open(
            self.directory / self._name,
            os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
            0o644,
        )
        self._outstanding[self._name] = 0
        self._written = 0

    def add(self, file_uuid: str) -> str:
        """Record that ``file_uuid`` is about to be written; returns a token to settle."""
        with self._lock:
            if self._fd < 0 or self._written >= self.ENTRIES_PER_FILE:
                self._open_next()
            os.write(self._fd, f"{file_uuid}\n".encode())
            self._written += 1
            self._outstanding[self._name] += 1
            return self._name

    def settle(self, tokens: Iterable[str]) -> None:
        """The files behind these entries are committed, or deleted again."""
        with self._lock:
            for name in tokens:
                self._outstanding[name] -= 1
                self._forget_if_done(name, full=name != self._name)

    def _forget_if_done(self, name: str, full: bool) -> None:
        if full and self._outstanding.get(name) == 0:
            del self._outstanding[name]
            (self.directory / name).unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
                self._forget_if_done(self._name, full=True)

    def leftovers(self) -> Iterator[tuple[Path, list[str]]]:
        """Journals of earlier processes and the UUIDs they list (only call when no other
        process of this daemon runs)."""
        for path in sorted(self.directory.glob("*.log")):
            if path.name in self._outstanding:
                continue
            entries = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            yield path, entries
