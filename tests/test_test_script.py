"""``dicomd test-script``: scripts run on files in a throwaway daemon, with a report."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import run_dicomd
from dicomfactory import make_series

SCRIPTS = Path(__file__).parent.parent / "scripts"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return run_dicomd("test-script", *args)


def test_reports_actions_and_leaves_nothing_behind(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for number, data in enumerate(make_series(3)):
        (inputs / f"{number}.dcm").write_bytes(data)
    (inputs / "notes.txt").write_text("not DICOM")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"OrthancPeers": {"pacs": ["http://127.0.0.1:9/"]}}))
    done = run(
        str(SCRIPTS / "lua" / "autorouting.lua"),
        "--input",
        str(inputs),
        "--config",
        str(config),
        "--json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert len(report["Stored"]) == 3 and report["Errors"] == []
    assert [r["File"] for r in report["Rejected"]] == [str(inputs / "notes.txt")]
    forwards = [a for a in report["Actions"] if a["Kind"] == "forward"]
    assert sorted(a["Target"] for a in forwards) == sorted(report["Stored"])
    assert all(a["Details"] == {"peer": "pacs"} and not a["Executed"] for a in forwards)
    assert not list(tmp_path.glob("dicomd-data*"))  # the throwaway daemon left nothing


def test_a_script_error_names_its_line_and_fails(tmp_path: Path) -> None:
    inputs = tmp_path / "one.dcm"
    inputs.write_bytes(make_series(1)[0])
    script = tmp_path / "broken.lua"
    script.write_text(
        "function OnStableSeries(id, tags, metadata)\n  local x = nil\n  print(x.y)\nend\n"
    )
    done = run(str(script), "--input", str(inputs))
    assert done.returncode == 1
    assert "Errors (1):" in done.stdout
    assert "broken.lua:3: attempt to index a nil value" in done.stdout
