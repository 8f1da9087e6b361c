"""Forwarding to a real Orthanc (the Debian package ``orthanc``), in a loopback-only network
namespace: every level, synchronous and asynchronous, authentication, the peer down for a
minute in the middle of a 200-instance forward, and dicomd killed in the middle of one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from netns import netns_available, run_in_netns

SCENARIO = str(Path(__file__).parent / "orthanc_peer_scenario.py")

pytestmark = pytest.mark.skipif(
    shutil.which("Orthanc") is None or not netns_available(),
    reason="needs the Debian package orthanc and root (for a private network namespace)",
)


def test_forwarding_to_orthanc(tmp_path: Path) -> None:
    done = run_in_netns([SCENARIO, str(tmp_path), "60"], timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["sync"] == {
        "instance": [200, 1],
        "series": [200, 3],
        "study": [200, 3],
        "patient": [200, 3],
    }
    assert result["async_state"] == "Success"
    assert result["on_orthanc"] == result["expected"]
    assert result["anonymous"] == [500, 1]  # Orthanc refused (401): a dead letter at once
    assert result["outage_state_while_down"] in ("Running", "Retry")
    assert result["outage_state_before_restart"] == "Retry"
    assert result["outage_state"] == "Success"
    assert result["outage_new_instances"] == 200  # each arrived exactly once
    assert result["outage_all_there"] is True
    assert result["killed_after"] < 200
    assert result["killed_state"] == "Success"
    assert result["killed_new_instances"] == 200
    assert result["killed_all_there"] is True
