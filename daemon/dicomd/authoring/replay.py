"""``dicomd replay``: deliver the recorded events of a range of the change log again, to
the given scripts, on the storage of a stopped daemon; for re-running a rule, once fixed,
on the events it failed on.

The daemon's delivery is left as it was: no handler's position is read, moved or saved, no
delivery thread runs, and the daemon's own handlers go on from their positions when it next
runs. Each event of the range goes to each script that wants it, once, in log order; an
error is reported with the script's file and line, not retried. Without ``dry_run`` the
scripts' actions are carried out (forwards are queued as jobs, sent when the daemon next
runs); with it they are only listed, and the index is opened read-only, so that not a byte
of the storage or index folders changes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..app import Daemon
from ..config import Config, load_config
from ..domain.model import Change
from ..errors import DicomdError, InexistentFile, StorageInUse
from ..events.delivery import Dispatcher
from ..events.handlers import Event, Handler
from ..scripting.actions import ACTION_KINDS, Action, ActionLog
from ..storage.sqlite_db import SQLiteDatabase
from .report import ErrorCollector, action_lines, error_lines

BATCH = 500
# Enough for the processes of a daemon just stopped to exit; a running one is not waited for.
LOCK_TIMEOUT = 3.0


@dataclass
class HandlerCount:
    delivered: int = 0
    failed: int = 0


@dataclass
class ReplayReport:
    since: int
    until: int
    dry_run: bool
    events: int = 0  # events of the range read from the log
    handlers: dict[str, HandlerCount] = field(default_factory=dict)
    skipped: list[tuple[Change, str]] = field(default_factory=list)  # (event, why)
    actions: list[Action] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    @property
    def jobs_queued(self) -> bool:
        return any(a.kind == "forward" and a.executed for a in self.actions)

    def as_json(self) -> dict[str, Any]:
        return {
            "Since": self.since,
            "Until": self.until,
            "DryRun": self.dry_run,
            "Events": self.events,
            "Handlers": [
                {"Name": name, "Delivered": count.delivered, "Failed": count.failed}
                for name, count in sorted(self.handlers.items())
            ],
            "Skipped": [dict(_change_json(change), Reason=why) for change, why in self.skipped],
            "Actions": [action.as_json() for action in self.actions],
            "Errors": self.errors,
        }

    def text(self) -> str:
        mode = ", dry run: nothing was carried out" if self.dry_run else ""
        lines = [
            f"Replay of the events after Seq {self.since} up to Seq {self.until}: "
            f"{self.events} events{mode}"
        ]
        lines.append(f"Handlers ({len(self.handlers)}):")
        lines += [
            f"  {name}: {count.delivered} delivered, {count.failed} failed"
            for name, count in sorted(self.handlers.items())
        ]
        lines.append(f"Skipped ({len(self.skipped)}):")
        lines += [f"  {_describe(change)}: {why}" for change, why in self.skipped]
        lines += action_lines(self.actions)
        if self.jobs_queued:
            lines.append("  (forwards are queued as jobs: they are sent when dicomd next runs)")
        return "\n".join(lines + error_lines(self.errors))


def _change_json(change: Change) -> dict[str, Any]:
    return {
        "Seq": change.seq,
        "ChangeType": change.change_type.name,
        "ResourceType": change.resource_type,
        "ID": change.public_id,
    }


def _describe(change: Change) -> str:
    what = change.resource_type or "Job"
    return f"Seq {change.seq} {change.change_type.name} {what} {change.public_id}"


class HandlerCollector(Dispatcher):
    """The dispatcher the script engines register with during a replay: it only keeps their
    handlers, for the replay to feed. Unlike the daemon's, it never reads or saves a
    position and never starts a thread."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.handlers: dict[str, Handler] = {}

    def register(self, handler: Handler) -> None:
        if handler.name in self.handlers:
            raise ValueError(f"an event handler named {handler.name!r} already exists")
        self.handlers[handler.name] = handler

    def unregister(self, name: str) -> None:
        self.handlers.pop(name, None)

    def start(self) -> None:
        pass

    def wake(self) -> None:
        pass

    def stop(self) -> None:
        pass


def replay_config(config: Config, scripts: list[Path]) -> Config:
    """The daemon's configuration with the given scripts instead of its own."""
    resolved = [p.resolve() for p in scripts]
    return dataclasses.replace(
        config,
        lua_scripts=tuple(p for p in resolved if p.suffix == ".lua"),
        python_scripts=tuple(p for p in resolved if p.suffix != ".lua"),
        execute_lua_enabled=False,
        hot_folders=(),
    )


def _open(config: Config, scripts: list[Path], dry_run: bool) -> Daemon:
    """The stopped daemon's storage with only ``scripts``, nothing running yet."""
    index_file = config.index_directory / SQLiteDatabase.FILE_NAME
    if not index_file.is_file():
        raise InexistentFile(f"no dicomd index at {index_file}: is --config the daemon's?")
    try:
        return Daemon(
            replay_config(config, scripts),
            read_only=dry_run,
            dispatcher=HandlerCollector,
            lock_timeout=LOCK_TIMEOUT,
        )
    except StorageInUse as exc:
        raise StorageInUse(f"{exc}, or replay on a copy of its storage and index folders") from None


def run_replay(
    config: Config, scripts: list[Path], since: int, until: int | None, dry_run: bool
) -> ReplayReport:
    """Replay the events after Seq ``since`` up to ``until`` (None: the last one logged
    now; events the replay itself causes are not replayed). Raises StorageInUse if a daemon
    runs on the storage, ReadOnlyIndex if a dry run cannot read it without writing."""
    collector = ErrorCollector()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        daemon = _open(config, scripts, dry_run)
        actions = ActionLog(dry=ACTION_KINDS if dry_run else ())
        daemon.services.action_log = actions
        try:
            last = daemon.index.last_change_seq()
            end = last if until is None else min(until, last)
            report = ReplayReport(since, max(since, end), dry_run)
            daemon.start_scripts()
            assert isinstance(daemon.events, HandlerCollector)
            _Replayer(daemon.events, report, collector, scripts).run()
        finally:
            daemon.stop()
    finally:
        root.removeHandler(collector)
    report.actions = actions.actions()
    report.errors += collector.messages
    return report


class _Replayer:
    """Feeds the collected handlers the events of the report's range."""

    def __init__(
        self,
        events: HandlerCollector,
        report: ReplayReport,
        collector: ErrorCollector,
        scripts: list[Path],
    ) -> None:
        self.events = events
        self.report = report
        self.collector = collector
        self.scripts = {p.resolve() for p in scripts}

    def run(self) -> None:
        report = self.report
        report.handlers = {name: HandlerCount() for name in self.events.handlers}
        position = report.since
        while position < report.until:
            batch = self.events.index.events_after(position, BATCH)
            if not batch:
                return
            for change in batch:
                if change.seq > report.until:
                    return
                position = change.seq
                report.events += 1
                self._replay(change)

    def _replay(self, change: Change) -> None:
        handlers = [h for h in self.events.handlers.values() if h.wants(change.change_type)]
        if not handlers:
            return
        if change.change_type.in_log and not Event(change, self.events.source).exists():
            self.report.skipped.append((change, "no longer stored"))
            return
        for handler in handlers:
            count = self.report.handlers.setdefault(handler.name, HandlerCount())
            logged = len(self.collector.records)
            try:
                handler.handle(Event(change, self.events.source))
                count.delivered += 1
            except Exception as exc:
                count.failed += 1
                # The Python engine logged it already: report it once, with its line.
                self.collector.records[logged:] = [
                    r for r in self.collector.records[logged:] if not _logs(r, exc)
                ]
                self.report.errors.append(
                    f"{handler.name} failed on {_describe(change)}: {self._located(exc)}"
                )

    def _located(self, exc: Exception) -> str:
        """The error, after the script line that raised it (a Lua error names its line
        itself)."""
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        frames = [
            f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) in self.scripts
        ]
        if not frames:
            return error
        frame = frames[-1]
        return f"{frame.filename}:{frame.lineno} in {frame.name}: {error}"


def _logs(record: logging.LogRecord, exc: BaseException) -> bool:
    return record.exc_info is not None and record.exc_info[1] is exc


def main(
    scripts: list[Path],
    since: int,
    until: int | None,
    config_file: Path | None,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Exit status: 0, 1 if a script raised, 2 if the replay could not run."""
    if since < 0 or (until is not None and until < since):
        print("dicomd replay: --since must be >= 0 and --until >= --since", file=sys.stderr)
        return 2
    missing = [str(p) for p in scripts if not p.is_file()]
    if missing:
        print(f"dicomd replay: no such script: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        report = run_replay(load_config(config_file), scripts, since, until, dry_run)
    except DicomdError as exc:
        print(f"dicomd replay: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_json(), indent=2) if as_json else report.text())
    return 1 if report.failed else 0
