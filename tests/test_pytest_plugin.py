"""The pytest plugin as a team uses it: a project of its own, with its rules and tests and
no conftest, run by pytest in a subprocess; installing dicomd is what makes the fixtures
there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROUTE_LUA = """\
function OnStoredInstance(instanceId, tags, metadata, origin)
   if tags.Modality == 'CT' then
      SendToPeer(instanceId, 'ct-pacs')
   else
      SendToPeer(instanceId, 'pacs')
   end
end
"""

PROTECT_PY = """\
import dicomd.script as dicomd


@dicomd.on_stable_study
def protect_research(event):
    if "RESEARCH" in event.tags().get("StudyDescription", "").upper():
        dicomd.protect(dicomd.describe(event.resource_id)["ParentPatient"])
"""

TESTS = """\
import json
import urllib.request

PEERS = {"OrthancPeers": {"pacs": ["http://127.0.0.1:9/"], "ct-pacs": ["http://127.0.0.1:9/"]}}


def test_ct_goes_to_the_ct_pacs(dicomd_sandbox, dicomd_dicom):
    daemon = dicomd_sandbox("rules/route.lua", config=PEERS)
    ct = daemon.upload_all(dicomd_dicom.series(2, Modality="CT", PatientID="P1"))
    mr = daemon.upload(dicomd_dicom(Modality="MR"))
    daemon.settle()
    assert daemon.forwards() == [
        (ct[0].ids.instance, "ct-pacs"),
        (ct[1].ids.instance, "ct-pacs"),
        (mr.ids.instance, "pacs"),
    ]
    with urllib.request.urlopen(daemon.url + "/patients/" + ct[0].ids.patient) as answer:
        assert json.load(answer)["MainDicomTags"]["PatientID"] == "P1"


def test_research_studies_are_protected_once_stable(dicomd_sandbox, dicomd_dicom):
    daemon = dicomd_sandbox("rules/protect.py")
    research = daemon.upload(dicomd_dicom(StudyDescription="Research 12"))
    daemon.settle()
    daemon.assert_action("protect", research.ids.patient)
    daemon.assert_no_errors()


def test_deliberately_wrong(dicomd_sandbox, dicomd_dicom):
    daemon = dicomd_sandbox("rules/route.lua", config="config.json")
    us = daemon.upload(dicomd_dicom(Modality="US"))
    daemon.settle()
    daemon.assert_action("forward", us.ids.instance, peer="ct-pacs")
"""


def make_project(root: Path) -> None:
    (root / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    (root / "config.json").write_text(
        '// the production peers\n{"OrthancPeers": {"pacs": ["http://127.0.0.1:9/"],\n'
        '                  "ct-pacs": ["http://127.0.0.1:9/"]}}\n'
    )
    (root / "rules").mkdir()
    (root / "rules" / "route.lua").write_text(ROUTE_LUA)
    (root / "rules" / "protect.py").write_text(PROTECT_PY)
    (root / "tests").mkdir()
    (root / "tests" / "test_rules.py").write_text(TESTS)


def test_a_separate_project_tests_its_rules_with_the_plugin(tmp_path: Path) -> None:
    make_project(tmp_path)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS")
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "2 passed" in output and "1 failed" in output, output
    assert "FAILED tests/test_rules.py::test_deliberately_wrong" in output, output
    # The failure names the action it missed and lists what the rule did instead.
    assert re.search(r"no 'forward' action on [0-9a-f-]{44} with peer='ct-pacs' recorded", output)
    assert re.search(r"\[Lua\] forward [0-9a-f-]{44} peer='pacs'  \(not carried out\)", output)
    assert not (tmp_path / ".pytest_cache").exists()
