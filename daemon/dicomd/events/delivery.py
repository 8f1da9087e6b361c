"""Durable delivery of notifications: every handler gets every event of the change log, in
order, at least once, from its own thread.

Each handler's position (the last Seq it finished) lives in the index. Positions are saved
together every ``SAVE_INTERVAL`` seconds and at stop, so that delivery costs ingestion one
small write transaction per interval, not one per event; after a crash a handler sees again
at most the events of that last interval. A handler that raises is retried
``len(RETRY_DELAYS)`` times, then the event is recorded as failed (``GET /events/failures``)
and delivery goes on: one bad event never blocks the ones behind it, and a slow handler never
slows ingestion or the other handlers. Only the main process delivers.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any

from ..domain.model import now_iso
from ..storage.index import HandlerFailure, Index
from .handlers import Event, EventSource, Handler

log = logging.getLogger(__name__)


class _Worker:
    """Feeds one handler from the event log."""

    BATCH = 200
    POLL = 0.1
    COALESCE = 0.02
    RETRY_DELAYS = (0.5, 2.0)

    def __init__(self, handler: Handler, position: int, index: Index, source: EventSource):
        self.handler = handler
        self.position = position
        self.index = index
        self.source = source
        self.delivered = 0
        self.failed = 0
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"dicomd-events-{handler.name}", daemon=True
        )

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                batch = self.index.events_after(self.position, self.BATCH)
            except Exception:
                log.exception("cannot read the event log for handler %s", self.handler.name)
                batch = []
            if not batch:
                if self.wake.wait(self.POLL):
                    # Let the events of the next few milliseconds join this one: one wake
                    # and one read per batch instead of per event keeps a handler that
                    # keeps up from competing with uploads for the GIL at every instance.
                    self.stopping.wait(self.COALESCE)
                self.wake.clear()
                continue
            for change in batch:
                if self.stopping.is_set():
                    return
                if self.handler.wants(change.change_type):
                    event = Event(change, self.source)
                    if not self._deliver(event):
                        return  # stopping: this event is delivered again after restart
                self.position = change.seq

    def _deliver(self, event: Event) -> bool:
        """Call the handler, with retries; False if interrupted by stop."""
        if event.change.change_type.in_log and not event.exists():
            return True  # deleted since; its Deleted event follows
        attempts = 0
        while True:
            attempts += 1
            try:
                self.handler.handle(event)
                self.delivered += 1
                return True
            except Exception as exc:
                log.error(
                    "handler %s failed on %r (attempt %d):\n%s",
                    self.handler.name,
                    event,
                    attempts,
                    traceback.format_exc(),
                )
                if attempts > len(self.RETRY_DELAYS):
                    self._give_up(event, attempts, exc)
                    return True
                if self.stopping.wait(self.RETRY_DELAYS[attempts - 1]):
                    return False

    def _give_up(self, event: Event, attempts: int, exc: Exception) -> None:
        self.failed += 1
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        try:
            self.index.record_failure(
                HandlerFailure(self.handler.name, event.change, attempts, error, now_iso())
            )
        except Exception:
            log.exception("cannot record the failure of handler %s", self.handler.name)


class Dispatcher:
    """Runs one worker per registered handler and persists their positions."""

    SAVE_INTERVAL = 0.2
    PRUNE_INTERVAL = 30.0

    def __init__(self, index: Index, source: EventSource) -> None:
        self.index = index
        self.source = source
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved: dict[str, int] = {}

    def register(self, handler: Handler) -> None:
        """Start feeding ``handler``: from where it stopped last time, or, for a handler
        never seen before, from the end of the log (it gets the events from now on)."""
        with self._lock:
            if handler.name in self._workers:
                raise ValueError(f"an event handler named {handler.name!r} already exists")
            position = self.index.handler_positions().get(handler.name)
            if position is None:
                position = self.index.last_change_seq()
                self.index.save_handler_positions({handler.name: position})
            worker = _Worker(handler, position, self.index, self.source)
            self._workers[handler.name] = worker
            self._saved[handler.name] = position
            if self._thread is not None:
                worker.thread.start()

    def unregister(self, name: str) -> None:
        """Stop feeding a handler; its position is kept for when it comes back."""
        with self._lock:
            worker = self._workers.pop(name, None)
        if worker is not None:
            self._stop_worker(worker)
            self.index.save_handler_positions({name: worker.position})

    def start(self) -> None:
        with self._lock:
            for worker in self._workers.values():
                worker.thread.start()
            self._thread = threading.Thread(target=self._run, name="dicomd-events", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """New events were logged in this process: deliver them without waiting to poll."""
        for worker in list(self._workers.values()):
            worker.wake.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            self._stop_worker(worker)
        self._save()

    @staticmethod
    def _stop_worker(worker: _Worker) -> None:
        worker.stopping.set()
        worker.wake.set()
        if worker.thread.is_alive():
            worker.thread.join()

    def _run(self) -> None:
        next_prune = time.monotonic()
        while not self._stop.wait(self.SAVE_INTERVAL):
            try:
                self._save()
                if time.monotonic() >= next_prune:
                    self._prune()
                    next_prune = time.monotonic() + self.PRUNE_INTERVAL
            except Exception:
                log.exception("cannot save the event handlers' positions")

    def _save(self) -> None:
        with self._lock:
            current = {name: w.position for name, w in self._workers.items()}
        changed = {n: p for n, p in current.items() if self._saved.get(n) != p}
        if changed:
            self.index.save_handler_positions(changed)
            self._saved.update(changed)

    def _prune(self) -> None:
        """Forget hidden events every current handler has seen."""
        with self._lock:
            positions = [w.position for w in self._workers.values()]
        delivered = min(positions) if positions else self.index.last_change_seq()
        self.index.prune_events(delivered)

    def status(self) -> dict[str, Any]:
        """Per handler: position, backlog and failures (``GET /events``). It reads the
        positions from the index, so every process of the daemon answers the same; only
        the main process adds the handlers it runs and its live counts."""
        last = self.index.last_change_seq()
        positions = self.index.handler_positions()
        failures = self.index.handler_failure_counts()
        with self._lock:
            workers = dict(self._workers)
        handlers = []
        for name in sorted(set(positions) | set(workers)):
            worker = workers.get(name)
            position = worker.position if worker else positions[name]
            entry: dict[str, Any] = {
                "Name": name,
                "Position": position,
                "Backlog": max(last - position, 0),
                "Failed": failures.get(name, 0),
            }
            if worker is not None:
                entry["Delivered"] = worker.delivered
            handlers.append(entry)
        return {"Last": last, "Handlers": handlers}
