"""``dicomd test-script``: run scripts against DICOM files in a throwaway daemon and report
what they did, and would do, before they touch real data.

The daemon lives in a temporary folder and is gone afterwards. Input files go through the
real ingest pipeline; stable events fire at once instead of after ``StableAge``; forwards to
peers are recorded but not sent unless asked. Everything scripts do through the script API
is listed; every error they raise is reported with the script's line.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import build_config, parse_config_text
from .errors import DicomdError
from .model import Origin
from .scripting.actions import ActionLog
from .scriptreport import ErrorCollector, Report

log = logging.getLogger(__name__)


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def run_test_script(
    scripts: list[Path],
    inputs: list[Path],
    config_file: Path | None = None,
    send: bool = False,
    timeout: float = 120,
) -> Report:
    from .app import Daemon

    raw: dict[str, Any] = {}
    base = Path.cwd()
    if config_file is not None:
        raw = parse_config_text(config_file.read_text(encoding="utf-8"), str(config_file))
        base = config_file.resolve().parent
    collector = ErrorCollector()
    logging.getLogger().addHandler(collector)
    report = Report()
    try:
        with tempfile.TemporaryDirectory(prefix="dicomd-test-script-") as tmp:
            raw.update(
                StorageDirectory=str(Path(tmp) / "storage"),
                IndexDirectory=str(Path(tmp) / "storage"),
                HttpPort=0,
                HttpProcesses=1,
                LuaScripts=[str(p.resolve()) for p in scripts if p.suffix == ".lua"],
                PythonScripts=[str(p.resolve()) for p in scripts if p.suffix != ".lua"],
            )
            for key in ("HotFolders", "PythonScript", "Python"):
                raw.pop(key, None)
            daemon = Daemon(build_config(raw, base))
            daemon.action_log = ActionLog(dry=() if send else {"forward"})
            daemon.start()
            try:
                _feed(daemon, inputs, report)
                _settle(daemon, timeout)
                report.actions = [a.as_json() for a in daemon.action_log.actions()]
                report.errors += [
                    f"{f.handler} failed on {f.change.change_type.name} "
                    f"{f.change.public_id} ({f.attempts} attempts): {f.error}"
                    for f in daemon.index.handler_failures(0, 10_000)
                ]
            finally:
                daemon.stop()
    finally:
        logging.getLogger().removeHandler(collector)
    report.errors += collector.messages
    return report


def _feed(daemon: Any, inputs: list[Path], report: Report) -> None:
    origin = Origin(request_origin="RestApi", remote_ip="127.0.0.1")
    for path in _files(inputs):
        try:
            result = daemon.ingest.ingest_upload(path.read_bytes(), origin)
        except (DicomdError, OSError) as exc:
            report.rejected.append((str(path), str(exc)))
            continue
        for item in result if isinstance(result, list) else [result]:
            target = report.stored if item.status == "Success" else report.already_stored
            target.append(item.ids.instance)


def _settle(daemon: Any, timeout: float) -> None:
    """Make everything stable now, then wait until every handler has seen every event."""
    deadline = time.monotonic() + timeout
    daemon.index.expire_stability()
    while time.monotonic() < deadline:
        status = daemon.events.status()
        busy = any(h["Backlog"] for h in status["Handlers"] if "Delivered" in h)
        if daemon.index.next_stable_deadline() is None and not busy:
            time.sleep(0.3)  # the last events' follow-ups (a forward job, a stable event)
            status = daemon.events.status()
            if not any(h["Backlog"] for h in status["Handlers"] if "Delivered" in h):
                return
        time.sleep(0.1)
    log.error("the scripts did not finish within %.0f s", timeout)


def main(
    scripts: list[Path], inputs: list[Path], config: Path | None, send: bool, as_json: bool
) -> int:
    report = run_test_script(scripts, inputs, config, send)
    print(json.dumps(report.as_json(), indent=2) if as_json else report.text())
    return 1 if report.failed else 0
