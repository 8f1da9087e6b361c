"""Periodic work (heartbeats of scripts, housekeeping), on APScheduler; the only module that
imports it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)


class Scheduler:
    """Runs named periodic jobs in a background thread. A job that is still running when
    its next turn comes skips that turn; a job that raises is logged and runs again."""

    def __init__(self) -> None:
        self._scheduler = BackgroundScheduler(
            daemon=True, job_defaults={"coalesce": True, "max_instances": 1}
        )

    def every(self, name: str, seconds: float, function: Callable[[], None]) -> None:
        """Call ``function`` every ``seconds`` (replacing any job of the same name)."""

        def run() -> None:
            try:
                function()
            except Exception:
                log.exception("periodic job %s failed", name)

        self._scheduler.add_job(
            run, "interval", seconds=seconds, id=name, name=name, replace_existing=True
        )

    def cancel(self, name: str) -> None:
        if self._scheduler.get_job(name) is not None:
            self._scheduler.remove_job(name)

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
