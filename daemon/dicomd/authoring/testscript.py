"""``dicomd test-script``: run scripts against DICOM files in a throwaway daemon and report
what they did, and would do, before they touch real data.

The daemon is a :class:`~dicomd.sandbox.ScriptSandbox` in a temporary folder, gone
afterwards. Input files go through the real ingest pipeline; stable events fire at once
instead of after ``StableAge``; forwards to peers are recorded but not sent unless asked.
Everything scripts do through the script API is listed; every error they raise is reported
with the script's line.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DicomdError
from .report import Report
from .sandbox import ScriptSandbox, files_under


def run_test_script(
    scripts: list[Path],
    inputs: list[Path],
    config_file: Path | None = None,
    send: bool = False,
    timeout: float = 120,
) -> Report:
    report = Report()
    with ScriptSandbox(scripts, config_file, send=send) as sandbox:
        _feed(sandbox, inputs, report)
        try:
            sandbox.settle(timeout)
        except TimeoutError as exc:
            report.errors.append(str(exc))
        report.actions = sandbox.actions()
    report.errors += sandbox.errors
    return report


def _feed(sandbox: ScriptSandbox, inputs: list[Path], report: Report) -> None:
    for path in files_under(inputs):
        try:
            results = sandbox.upload_all([path])
        except (DicomdError, OSError) as exc:
            report.rejected.append((str(path), str(exc)))
            continue
        for item in results:
            target = report.stored if item.status == "Success" else report.already_stored
            target.append(item.ids.instance)


def main(
    scripts: list[Path], inputs: list[Path], config: Path | None, send: bool, as_json: bool
) -> int:
    report = run_test_script(scripts, inputs, config, send)
    print(json.dumps(report.as_json(), indent=2) if as_json else report.text())
    return 1 if report.failed else 0
