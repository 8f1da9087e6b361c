"""Hot folders: watch inbox folders and import what is dropped there (the only module that
uses watchdog).

Shaped as watchdog itself is: an observer thread per folder turns file-system events into
messages; one scheduler thread per folder owns all the state (which files are settling, which
are being imported, which could not be moved) so that it needs no locks; a small thread pool
imports settled files through :class:`~dicomd.inbox.InboxImporter`, which reports back to
the scheduler through the same queue.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from ..config import HotFolder
from . import IngestPipeline
from .inbox import FileOutcome, InboxImporter, file_state, is_ignored, iter_files

log = logging.getLogger(__name__)

# Imports of one folder run on this many threads: parsing holds the GIL, but reading the
# file, writing the store and committing the index do not (see docs/performance.md).
IMPORT_THREADS = 4
RESCAN_SECONDS = 60.0  # a full look at an idle inbox, in case an event was missed
PROGRESS_SECONDS = 10.0
LARGE_BATCH = 100  # batches at least this large get progress lines and a summary


def _quiet_watchdog() -> None:
    """watchdog's inotify observer warns when a new sub-folder is watched twice (its own
    recursive watch racing the folder's creation event) and then carries on correctly; the
    warning says nothing to users, and where warnings are errors it would kill the observer's
    thread."""
    warnings.filterwarnings(
        "ignore", message=r"Callback with id .* already exists", category=RuntimeWarning
    )


class SettleTracker:
    """Which files have stopped changing: a file is ready when its size and mtime are the
    same ``settle`` seconds after they were last seen to change, or as soon as it was
    closed after writing."""

    def __init__(self, settle: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._settle = settle
        self._clock = clock
        self._state: dict[Path, tuple[tuple[int, int], float]] = {}
        self._deadlines: list[tuple[float, Path]] = []

    def __len__(self) -> int:
        return len(self._state)

    def __contains__(self, path: Path) -> bool:
        return path in self._state

    def see(self, path: Path) -> None:
        """Start watching ``path`` (new or changed) unless it is watched already."""
        if path in self._state:
            return
        state = file_state(path)
        if state is not None:
            self._wait(path, state)

    def forget(self, path: Path) -> None:
        self._state.pop(path, None)

    def _wait(self, path: Path, state: tuple[int, int]) -> None:
        deadline = self._clock() + self._settle
        self._state[path] = (state, deadline)
        heapq.heappush(self._deadlines, (deadline, path))

    def next_deadline(self) -> float | None:
        return self._deadlines[0][0] if self._deadlines else None

    def ready(self) -> list[Path]:
        """The files whose quiet period ended unchanged; changed ones wait again."""
        now = self._clock()
        settled = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, path = heapq.heappop(self._deadlines)
            known = self._state.get(path)
            if known is None or known[1] != deadline:
                continue  # forgotten, or re-armed with a later deadline
            state = file_state(path)
            if state is None:
                del self._state[path]
            elif state == known[0]:
                del self._state[path]
                settled.append(path)
            else:
                self._wait(path, state)
        return settled


class _EventHandler(FileSystemEventHandler):
    """Turns watchdog events into scheduler messages; does nothing else, on watchdog's thread."""

    def __init__(self, post: Callable[[str, Path], None]) -> None:
        self._post = post

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileClosedEvent):
            self._post("closed", Path(str(event.src_path)))
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent)):
            self._post("seen", Path(str(event.src_path)))
        elif isinstance(event, FileMovedEvent):
            self._post("seen", Path(str(event.dest_path)))
        elif isinstance(event, DirMovedEvent):
            self._post("folder", Path(str(event.dest_path)))
        elif isinstance(event, DirCreatedEvent):
            self._post("folder", Path(str(event.src_path)))


_EVENT_TYPES = [
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirMovedEvent,
]


@dataclass
class _Batch:
    """Counts for the files imported since the folder was last idle, for progress lines."""

    started: float = field(default_factory=time.monotonic)
    imported: int = 0
    stored: int = 0
    already: int = 0
    failed: int = 0
    last_progress: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.imported + self.failed

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-6)


class FolderWatcher:
    """Watches one hot folder and imports what settles there."""

    def __init__(self, folder: HotFolder, pipeline: IngestPipeline) -> None:
        self.folder = folder
        self._importer = InboxImporter(folder, pipeline)
        self._messages: queue.Queue[tuple[str, Path, FileOutcome | None]] = queue.Queue()
        self._tracker = SettleTracker(folder.settle_seconds)
        self._busy: set[Path] = set()
        # Files that failed and could not be moved away, with their state then: retried
        # only once they change, never in a loop.
        self._stuck: dict[Path, tuple[int, int] | None] = {}
        self._batch: _Batch | None = None
        self._observer: BaseObserver | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> None:
        """Watch first, then look at what is already there, so nothing falls between."""
        self.folder.path.mkdir(parents=True, exist_ok=True)
        name = self.folder.path.name
        self._pool = ThreadPoolExecutor(IMPORT_THREADS, thread_name_prefix=f"hotfolder-{name}")
        self._observer = PollingObserver(timeout=1) if self.folder.polling else Observer()
        handler = _EventHandler(lambda kind, path: self._messages.put((kind, path, None)))
        self._observer.schedule(
            handler,
            str(self.folder.path),
            recursive=self.folder.recursive,
            event_filter=_EVENT_TYPES,
        )
        self._observer.start()
        self._messages.put(("folder", self.folder.path, None))
        self._thread = threading.Thread(target=self._run, name=f"hotfolder-{name}", daemon=True)
        self._thread.start()
        log.info(
            "hot folder %s: watching (%s, %s, after import: %s)",
            self.folder.path,
            "polling" if self.folder.polling else "inotify",
            "recursive" if self.folder.recursive else "top level only",
            "move to " + str(self.folder.done_path)
            if self.folder.after_import == "Move"
            else "delete",
        )

    def stop(self) -> None:
        """Stop watching; imports under way finish, files not started stay in the inbox."""
        self._stopping = True
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
        self._messages.put(("stop", self.folder.path, None))
        if self._thread is not None:
            self._thread.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ scheduler thread

    def _run(self) -> None:
        last_scan = time.monotonic()
        while True:
            kind, path, outcome = self._next_message()
            if kind == "stop":
                return
            try:
                self._handle(kind, path, outcome)
                if self._idle() and time.monotonic() - last_scan > RESCAN_SECONDS:
                    self._handle("folder", self.folder.path, None)
                    last_scan = time.monotonic()
                self._dispatch(self._tracker.ready())
                self._report()
            except Exception:  # the watcher must outlive any one bad file or event
                log.exception("hot folder %s: unexpected error", self.folder.path)

    def _next_message(self) -> tuple[str, Path, FileOutcome | None]:
        deadline = self._tracker.next_deadline()
        timeout = RESCAN_SECONDS if deadline is None else max(deadline - time.monotonic(), 0)
        if self._batch is not None:
            timeout = min(timeout, PROGRESS_SECONDS)
        try:
            return self._messages.get(timeout=timeout)
        except queue.Empty:
            return ("tick", self.folder.path, None)

    def _handle(self, kind: str, path: Path, outcome: FileOutcome | None) -> None:
        if kind == "done" and outcome is not None:
            self._finished(outcome)
        elif kind == "folder" and (
            path == self.folder.path or (self.folder.recursive and self._wanted(path))
        ):
            for file in iter_files(path, self.folder.recursive):
                self._consider(file)
        elif kind in ("seen", "closed") and self._wanted(path):
            # Closed after writing: take it now, but only if it is the file settling here.
            # A close that arrives late, after the timer already took that file, may find
            # a new file of the same name that its writer has only just created.
            if kind == "closed" and path in self._tracker:
                self._tracker.forget(path)
                self._dispatch([path])
            else:
                self._consider(path)

    def _wanted(self, path: Path) -> bool:
        """Inside the folder, not ignored (hidden or temporary, here or in a parent)."""
        try:
            rel = path.relative_to(self.folder.path)
        except ValueError:
            return False
        if not rel.parts or (not self.folder.recursive and len(rel.parts) > 1):
            return False
        return not any(is_ignored(part) for part in rel.parts)

    def _consider(self, path: Path) -> None:
        if path in self._busy or path in self._tracker:
            return
        if path in self._stuck:
            if file_state(path) == self._stuck[path]:
                return
            del self._stuck[path]
        self._tracker.see(path)

    def _dispatch(self, paths: list[Path]) -> None:
        if not paths or self._pool is None or self._stopping:
            return
        if self._batch is None:
            self._batch = _Batch()
        for path in paths:
            self._busy.add(path)
            self._pool.submit(self._import, path)

    def _import(self, path: Path) -> None:
        """On a pool thread: import one file and tell the scheduler."""
        outcome = self._importer.import_file(path)
        self._messages.put(("done", path, outcome))

    def _finished(self, outcome: FileOutcome) -> None:
        path = outcome.path
        self._busy.discard(path)
        batch = self._batch or _Batch()
        if outcome.status == "changed":
            self._tracker.see(path)
        elif outcome.status == "stuck":
            self._stuck[path] = outcome.state
            if outcome.stored or outcome.already:
                batch.imported += 1
            else:
                batch.failed += 1
        elif outcome.status == "imported":
            batch.imported += 1
            batch.stored += outcome.stored
            batch.already += outcome.already
            log.debug("hot folder: %s imported", path)
        elif outcome.status == "failed":
            batch.failed += 1

    def _idle(self) -> bool:
        return not self._busy and not len(self._tracker)

    def _report(self) -> None:
        """Progress lines for large batches, and a summary when a batch is over."""
        batch = self._batch
        if batch is None:
            return
        now = time.monotonic()
        waiting = len(self._busy) + len(self._tracker)
        if self._idle():
            self._batch = None
            if batch.done >= LARGE_BATCH or batch.failed:
                log.info(
                    "hot folder %s: %d file(s) in %.1f s (%.0f files/s): %d instance(s) "
                    "stored, %d already stored, %d file(s) to %s",
                    self.folder.path,
                    batch.done,
                    now - batch.started,
                    batch.rate(),
                    batch.stored,
                    batch.already,
                    batch.failed,
                    self.folder.error_path,
                )
        elif now - batch.last_progress >= PROGRESS_SECONDS and batch.done + waiting >= LARGE_BATCH:
            batch.last_progress = now
            log.info(
                "hot folder %s: %d file(s) imported, %d failed, %d waiting (%.0f files/s)",
                self.folder.path,
                batch.imported,
                batch.failed,
                waiting,
                batch.rate(),
            )


class HotFolders:
    """Every hot folder of a daemon; only the main process runs them."""

    def __init__(self, folders: tuple[HotFolder, ...], pipeline: IngestPipeline) -> None:
        self._watchers = [FolderWatcher(folder, pipeline) for folder in folders]

    def start(self) -> None:
        _quiet_watchdog()
        started = []
        try:
            for watcher in self._watchers:
                watcher.start()
                started.append(watcher)
        except BaseException:
            for watcher in started:
                watcher.stop()
            raise

    def stop(self) -> None:
        for watcher in self._watchers:
            watcher.stop()
