"""Files dropped into an inbox folder: which to take, importing one, and where it goes after.

This is the part of hot folders that knows nothing of watchdog or threads, so that it can be
tested directly, and so that ``dicomd import`` walks a folder tree by the same rules.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..config import HotFolder
from ..domain.model import Origin
from ..errors import DicomdError
from . import IngestPipeline
from .pipeline import IngestResult

log = logging.getLogger(__name__)

# Names that copy tools give a file while they write it; the file is taken once renamed.
TEMPORARY_SUFFIXES = (".part", ".partial", ".filepart", ".crdownload", ".tmp", ".temp")
ERROR_SUFFIX = ".error.txt"
HOT_FOLDER_ORIGIN = Origin(request_origin="HotFolder")


def is_ignored(name: str) -> bool:
    """True for hidden names and the temporary names of copy tools (``x.dcm.part``)."""
    return name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES)


def iter_files(root: Path, recursive: bool = True) -> Iterator[Path]:
    """The files under ``root`` that are not ignored; hidden folders are not entered.

    Folders that vanish or cannot be read while walking are skipped: an inbox changes
    under our feet, and the next look will see what this one missed.
    """
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        if is_ignored(entry.name):
            continue
        try:
            if entry.is_file():
                yield Path(entry.path)
            elif recursive and entry.is_dir(follow_symlinks=False):
                yield from iter_files(Path(entry.path), recursive)
        except OSError:
            continue


def file_state(path: Path) -> tuple[int, int] | None:
    """(size, mtime in ns) of a file, or None when it is gone: what "unchanged" compares."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def _numbered(target: Path, n: int) -> Path:
    """``a.dcm`` -> ``a-1.dcm``; names without a real extension (DICOM UIDs) -> ``name-1``."""
    if n == 0:
        return target
    suffix = target.suffix
    if suffix[1:].isalpha() and len(suffix) <= 6:
        return target.with_name(f"{target.stem}-{n}{suffix}")
    return target.with_name(f"{target.name}-{n}")


def _place(src: Path, dst: Path) -> bool:
    """Put ``src`` at ``dst`` unless ``dst`` exists; False when it does. Never overwrites,
    even against another writer: a hard link fails on an existing name, and the copy that
    replaces it across file systems creates its target exclusively."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        try:
            with open(src, "rb") as reader, open(dst, "xb") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)
        except FileExistsError:
            return False
        shutil.copystat(src, dst)
    os.unlink(src)
    return True


def move_without_overwrite(src: Path, target: Path) -> Path:
    """Move ``src`` to ``target``, or to ``target-1``, ``target-2``... when that name (or
    its ``.error.txt`` reason file) is taken. Returns where the file went."""
    target.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        dst = _numbered(target, n)
        reason = dst.with_name(dst.name + ERROR_SUFFIX)
        if not reason.exists() and _place(src, dst):
            return dst
        n += 1


@dataclass
class FileOutcome:
    """What became of one inbox file."""

    path: Path
    status: str  # "imported", "failed", "changed" (re-wait), "gone", "stuck" (left in place)
    stored: int = 0  # instances newly stored
    already: int = 0  # instances that were already stored
    reason: str = ""
    state: tuple[int, int] | None = None  # the file's state when it was read


class InboxImporter:
    """Imports one file of a hot folder and then deletes it or moves it to ``DonePath``, or
    moves it to ``ErrorPath`` with the reason. Safe to call from many threads at once."""

    def __init__(self, folder: HotFolder, pipeline: IngestPipeline) -> None:
        self.folder = folder
        self.pipeline = pipeline

    def import_file(self, path: Path) -> FileOutcome:
        """Import ``path``; it is removed from the inbox only after its instances are stored
        (the index transaction committed), so a crash at any point loses nothing."""
        state = file_state(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return FileOutcome(path, "gone")
        except OSError as exc:
            return self._fail(path, state, f"cannot read the file: {exc.strerror or exc}")
        outcome = self._ingest(path, data)
        outcome.state = state
        if file_state(path) != state:
            # Written to while we read it: wait for it to settle and import it again.
            return FileOutcome(path, "changed", state=state)
        if outcome.status == "failed":
            return self._fail(path, state, outcome.reason)
        return self._done(outcome)

    def _ingest(self, path: Path, data: bytes) -> FileOutcome:
        if not data:
            return FileOutcome(path, "failed", reason="the file is empty (0 bytes)")
        skipped: list[str] = []
        try:
            result = self.pipeline.ingest_upload(data, HOT_FOLDER_ORIGIN, skipped)
        except DicomdError as exc:
            return FileOutcome(path, "failed", reason=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # an unexpected failure is still this file's reason
            log.exception("hot folder: importing %s failed", path)
            return FileOutcome(path, "failed", reason=f"{type(exc).__name__}: {exc}")
        results = result if isinstance(result, list) else [result]
        outcome = _count(path, results)
        if isinstance(result, list) and not results:
            outcome.status, outcome.reason = "failed", "the ZIP archive holds no DICOM file"
        elif skipped:
            # What was stored stays stored; the archive is kept for what was not.
            outcome.status = "failed"
            outcome.reason = (
                f"{outcome.stored + outcome.already} DICOM file(s) of the ZIP archive were "
                f"stored; {len(skipped)} entries were not:\n" + "\n".join(skipped)
            )
        return outcome

    def _relative(self, path: Path) -> Path:
        try:
            return path.relative_to(self.folder.path)
        except ValueError:
            return Path(path.name)

    def _done(self, outcome: FileOutcome) -> FileOutcome:
        path = outcome.path
        try:
            if self.folder.after_import == "Move":
                move_without_overwrite(path, self.folder.done_path / self._relative(path))
            else:
                path.unlink()
        except FileNotFoundError:
            pass  # someone else took it; its content is stored
        except OSError as exc:
            log.error(
                "hot folder: %s was imported but cannot be removed from the inbox: %s", path, exc
            )
            outcome.status, outcome.reason = "stuck", str(exc)
        return outcome

    def _fail(self, path: Path, state: tuple[int, int] | None, reason: str) -> FileOutcome:
        """Move a file that could not be imported to ``ErrorPath`` with its reason beside it.
        When even that fails, the file stays in the inbox and the caller must not retry it."""
        try:
            moved = move_without_overwrite(path, self.folder.error_path / self._relative(path))
        except FileNotFoundError:
            return FileOutcome(path, "gone", reason=reason, state=state)
        except OSError as exc:
            log.error(
                "hot folder: cannot move %s to the error folder (%s); it stays in the "
                "inbox and is not retried until it changes. It failed because: %s",
                path,
                exc,
                reason,
            )
            return FileOutcome(path, "stuck", reason=reason, state=state)
        log.warning("hot folder: %s moved to %s: %s", path, moved, reason.splitlines()[0])
        text = f"file: {path}\ntime: {time.strftime('%Y-%m-%d %H:%M:%S %z')}\nreason: {reason}\n"
        try:
            moved.with_name(moved.name + ERROR_SUFFIX).write_text(text, encoding="utf-8")
        except OSError as exc:
            log.error("hot folder: cannot write the reason file beside %s: %s", moved, exc)
        return FileOutcome(path, "failed", reason=reason, state=state)


def _count(path: Path, results: list[IngestResult]) -> FileOutcome:
    stored = sum(1 for r in results if r.status == "Success")
    return FileOutcome(path, "imported", stored=stored, already=len(results) - stored)
