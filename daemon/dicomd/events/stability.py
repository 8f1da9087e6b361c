"""Stable resources: a series, study or patient that received no instance for ``StableAge``
seconds becomes stable.

Each one's deadline is a row of the index, written by the store transaction, so a restart
resumes the countdown: a resource whose deadline passed while the daemon was down becomes
stable at start-up, the others at their time. The monitor sleeps until the earliest
deadline; it also looks again every ``POLL`` seconds, since another process of the daemon
(or another daemon on the same index) may have set an earlier one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..domain.model import Change
from ..storage.index import Index

log = logging.getLogger(__name__)


class StabilityMonitor:
    """Turns passed deadlines into StableSeries / StableStudy / StablePatient changes."""

    POLL = 0.25

    def __init__(self, index: Index, on_changes: Callable[[list[Change]], None]) -> None:
        self.index = index
        self.on_changes = on_changes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dicomd-stability", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self._sweep()
            except Exception:
                log.exception("stable-resource monitor failed; retrying")
                delay = 1.0
            self._stop.wait(delay)

    def _sweep(self) -> float:
        """Fire what is due; return how long to sleep."""
        deadline = self.index.next_stable_deadline()
        now = time.time()
        if deadline is not None and deadline <= now:
            changes = self.index.take_stable(now)
            if changes:
                self.on_changes(changes)
            return 0.0
        if deadline is None:
            return self.POLL
        return min(self.POLL, deadline - now)
