"""Stable series, studies and patients: timing, re-arming, and surviving a SIGKILL."""

from __future__ import annotations

import threading
import time

import pytest

from dicomd.domain.model import ChangeType
from dicomd.events.handlers import FunctionHandler

from conftest import wait_for
from dicomfactory import make_dicom, make_series

STABLE = (ChangeType.StableSeries, ChangeType.StableStudy, ChangeType.StablePatient)


@pytest.mark.parametrize("stable_age", [1, 3])
def test_stable_events_fire_after_stable_age(make_daemon, stable_age: int) -> None:
    daemon, client = make_daemon(StableAge=stable_age)
    seen: list[tuple[float, ChangeType, str]] = []
    lock = threading.Lock()

    def record(event) -> None:
        with lock:
            seen.append((time.monotonic(), event.type, event.resource_id))

    daemon.events.register(FunctionHandler("timing", record, frozenset(STABLE)))
    files = make_series(3)
    for data in files:
        sent_at = time.monotonic()
        answer = client.post("/instances", data=data).json()
    stored_at = time.monotonic()
    series = answer["ParentSeries"]
    assert client.get(f"/series/{series}").json()["IsStable"] is False

    wait_for(lambda: len(seen) == 3, timeout=stable_age + 10)
    assert [kind for _, kind, _ in seen] == list(STABLE)
    assert [rid for _, _, rid in seen] == [
        series,
        answer["ParentStudy"],
        answer["ParentPatient"],
    ]
    # The countdown starts while the last upload is being stored: after it was sent, before
    # its answer came back (which a loaded machine may delay).
    early = seen[0][0] - sent_at - stable_age
    late = seen[0][0] - stored_at - stable_age
    assert early >= -0.05, f"stable {-early:.2f} s before StableAge"
    assert late < 1.0, f"stable {late:.2f} s after StableAge"
    for level, key in (("series", "ParentSeries"), ("studies", "ParentStudy")):
        assert client.get(f"/{level}/{answer[key]}").json()["IsStable"] is True
    logged = [c["ChangeType"] for c in client.get("/changes").json()["Changes"]]
    assert logged[-3:] == ["StableSeries", "StableStudy", "StablePatient"]


def test_a_new_instance_makes_it_unstable_again(make_daemon) -> None:
    _daemon, client = make_daemon(StableAge=1)

    def stable_series_events() -> int:
        kinds = [c["ChangeType"] for c in client.get("/changes").json()["Changes"]]
        return kinds.count("StableSeries")

    first_file, second_file = make_series(2)
    series = client.post("/instances", data=first_file).json()["ParentSeries"]
    wait_for(lambda: client.get(f"/series/{series}").json()["IsStable"])
    client.post("/instances", data=second_file)
    assert client.get(f"/series/{series}").json()["IsStable"] is False
    wait_for(lambda: stable_series_events() == 2)
    # A duplicate changes nothing (Orthanc logs nothing for it either).
    assert client.post("/instances", data=second_file).json()["Status"] == "AlreadyStored"
    assert client.get(f"/series/{series}").json()["IsStable"] is True
    time.sleep(1.5)
    assert stable_series_events() == 2


def test_pending_stability_survives_sigkill(daemon_process) -> None:
    proc = daemon_process(StableAge=4, HttpProcesses=1).start()
    client = proc.client()
    answer = client.post("/instances", data=make_dicom()).json()
    stored_at = time.monotonic()
    proc.kill()
    time.sleep(1.5)
    proc.start()
    restarted = time.monotonic() - stored_at
    client = proc.client()
    wait_for(lambda: client.get(f"/series/{answer['ParentSeries']}").json()["IsStable"], 20)
    became_stable = time.monotonic() - stored_at
    # At the time it would have been without the crash (4 s after the upload, or at once
    # if the restart took longer), not StableAge after the restart (5.5 s or later).
    assert 4 <= became_stable < max(4, restarted) + 1.2, (became_stable, restarted)
    kinds = [c["ChangeType"] for c in client.get("/changes").json()["Changes"]]
    assert kinds[-3:] == ["StableSeries", "StableStudy", "StablePatient"]


def test_overdue_resources_become_stable_at_start(daemon_process) -> None:
    proc = daemon_process(StableAge=1, HttpProcesses=1).start()
    client = proc.client()
    answer = client.post("/instances", data=make_dicom()).json()
    proc.kill()
    time.sleep(1.5)  # the deadline passes while the daemon is down
    proc.start()
    client = proc.client()
    wait_for(lambda: client.get(f"/series/{answer['ParentSeries']}").json()["IsStable"], 5)


def test_scripts_can_force_the_stable_status(make_daemon) -> None:
    from dicomd.scripting.api import ScriptApi

    daemon, client = make_daemon(StableAge=60)
    api = ScriptApi(daemon.services, "Lua")
    answer = client.post("/instances", data=make_dicom()).json()
    series = answer["ParentSeries"]
    assert api.set_stable_status(series, True) is True
    assert api.set_stable_status(series, True) is False  # already stable
    assert client.get(f"/series/{series}").json()["IsStable"] is True
    kinds = [c["ChangeType"] for c in client.get("/changes").json()["Changes"]]
    assert kinds[-1] == "StableSeries"
    assert client.get(f"/studies/{answer['ParentStudy']}").json()["IsStable"] is False
    assert api.set_stable_status(series, False) is True
    assert client.get(f"/series/{series}").json()["IsStable"] is False
