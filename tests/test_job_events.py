"""Job events: JobSubmitted, JobSuccess and JobFailure in the durable event log, and the Lua,
``dicomd.script`` and ``import orthanc`` callbacks they feed, between real daemons."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from dicomd.domain.model import ChangeType
from dicomd.events.handlers import Event, FunctionHandler
from dicomd.peers import jobs as jobs_module
from test_lua_crash import SCRIPT as BLOCKING_SCRIPT

from conftest import wait_for
from dicomfactory import make_dicom

DOWN = "http://127.0.0.1:9/"  # nothing listens: a send fails at once
JOB_CHANGES = frozenset(t for t in ChangeType if t.is_job)
JOB_TYPES = {t.name for t in JOB_CHANGES}


def store_async(client, peer: str, resource: str) -> str:
    answer = client.post(
        f"/peers/{peer}/store", json={"Resources": [resource], "Asynchronous": True}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["ID"]


def wait_state(client, job_id: str, state: str) -> dict:
    return wait_for(lambda: (job := client.get(f"/jobs/{job_id}").json())["State"] == state and job)


def test_a_job_logs_its_submission_and_its_end_only(make_daemon, monkeypatch) -> None:
    # Two quick retries, then a long wait in Retry, during which the job is cancelled.
    monkeypatch.setattr(jobs_module, "backoff", lambda attempts: 0.2 if attempts < 3 else 60)
    _b, b_client = make_daemon()
    daemon, client = make_daemon(
        OrthancPeers={
            "b": [b_client.base_url],
            "down": {"Url": DOWN, "MaxRetries": 0},
            "flaky": {"Url": DOWN, "MaxRetries": 1000},
        }
    )
    events: list[Event] = []
    daemon.events.register(FunctionHandler("recorder", events.append, JOB_CHANGES))

    def logged(count: int) -> list[tuple[str, str]]:
        wait_for(lambda: len(events) >= count)
        return [(e.type.name, e.resource_id) for e in events]

    instance = client.post("/instances", data=make_dicom()).json()["ID"]
    sent = store_async(client, "b", instance)
    wait_state(client, sent, "Success")
    failed = store_async(client, "down", instance)
    wait_state(client, failed, "Failure")
    retrying = store_async(client, "flaky", instance)
    wait_for(lambda: client.get(f"/jobs/{retrying}").json()["Attempts"] == 3)
    wait_state(client, retrying, "Retry")
    # Retries log nothing.
    assert logged(5) == [
        ("JobSubmitted", sent),
        ("JobSuccess", sent),
        ("JobSubmitted", failed),
        ("JobFailure", failed),
        ("JobSubmitted", retrying),
    ]
    # A cancel ends the job: a failure, even if it was not running.
    assert client.post(f"/jobs/{retrying}/cancel").json() == {}
    assert logged(6)[5] == ("JobFailure", retrying)
    # A resubmit is no new submission (as in Orthanc); the job's new end is logged again.
    assert client.post(f"/jobs/{failed}/resubmit").json() == {}
    assert logged(7)[6] == ("JobFailure", failed)
    time.sleep(0.5)
    assert len(events) == 7
    for event in events:
        assert event.level is None and event.change.path == f"/jobs/{event.resource_id}"
        assert event.tags() == {} and event.metadata() == {} and not event.exists()
    # Hidden from the change log, as Deleted is.
    changes = client.get("/changes?limit=100").json()["Changes"]
    assert changes and not JOB_TYPES & {c["ChangeType"] for c in changes}


# test_lua_crash's script notes each OnStoredInstance in calls.txt, and holds the Lua handler
# while the "block" file exists; these callbacks note each job event there too.
LUA = (
    BLOCKING_SCRIPT
    + """
function OnJobSubmitted(jobId) note('OnJobSubmitted ' .. jobId) end
function OnJobSuccess(jobId) note('OnJobSuccess ' .. jobId) end
function OnJobFailure(jobId) note('OnJobFailure ' .. jobId) end
"""
)

NATIVE = """
import dicomd.script as dicomd

FOLDER = dicomd.configuration()["JobsFolder"]

def note(kind, event):
    line = [kind, event.resource_id, repr(event.level), event.exists(), event.tags()]
    with open(f"{FOLDER}/native.txt", "a") as out:
        out.write(repr(line) + "\\n")

@dicomd.on_job_submitted
def submitted(event):
    note("submitted", event)

@dicomd.on_job_success
def success(event):
    note("success", event)

@dicomd.on_job_failure
def failure(event):
    note("failure", event)
"""

ORTHANC = """
import json
import orthanc

FOLDER = json.loads(orthanc.GetConfiguration())["JobsFolder"]

def on_change(change_type, resource_type, resource_id):
    if change_type in (orthanc.ChangeType.JOB_SUBMITTED, orthanc.ChangeType.JOB_SUCCESS,
                       orthanc.ChangeType.JOB_FAILURE):
        with open(f"{FOLDER}/orthanc.txt", "a") as out:
            out.write(json.dumps([change_type, resource_type, resource_id]) + "\\n")

orthanc.RegisterOnChangeCallback(on_change)
"""


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_scripts_get_each_job_event_once(make_daemon, tmp_path: Path) -> None:
    folder = tmp_path / "scripts"
    folder.mkdir()
    for name, source in {"jobs.lua": LUA, "native.py": NATIVE, "compat.py": ORTHANC}.items():
        (folder / name).write_text(source)
    _b, b_client = make_daemon()
    _a, client = make_daemon(
        LuaScripts=[str(folder / "jobs.lua")],
        PythonScripts=[str(folder / "native.py"), str(folder / "compat.py")],
        CrashFolder=str(folder),
        JobsFolder=str(folder),
        OrthancPeers={"b": [b_client.base_url], "down": [DOWN]},
        PeerMaxRetries=0,
    )
    instance = client.post("/instances", data=make_dicom()).json()["ID"]
    ok = store_async(client, "b", instance)
    wait_state(client, ok, "Success")
    bad = store_async(client, "down", instance)
    wait_state(client, bad, "Failure")

    def lua() -> list[str]:
        return [line for line in lines(folder / "calls.txt") if line.startswith("OnJob")]

    outputs = [folder / "native.txt", folder / "orthanc.txt"]
    wait_for(lambda: len(lua()) >= 4 and all(len(lines(path)) >= 4 for path in outputs))
    time.sleep(0.5)  # nothing more comes
    assert lua() == [
        f"OnJobSubmitted {ok}",
        f"OnJobSuccess {ok}",
        f"OnJobSubmitted {bad}",
        f"OnJobFailure {bad}",
    ]
    assert lines(folder / "native.txt") == [
        repr([kind, job, "None", False, {}])
        for kind, job in [("submitted", ok), ("success", ok), ("submitted", bad), ("failure", bad)]
    ]
    none = 4  # the plugin's ResourceType.NONE
    assert [json.loads(line) for line in lines(folder / "orthanc.txt")] == [
        [16, none, ok],
        [17, none, ok],
        [16, none, bad],
        [18, none, bad],
    ]
    assert client.get("/events/failures").json() == []
    assert b_client.get("/instances").json() == [instance]


@pytest.mark.slow
def test_job_events_logged_before_a_sigkill_are_delivered_after_restart(
    daemon_process, tmp_path: Path
) -> None:
    folder = tmp_path / "lua"
    folder.mkdir()
    (folder / "script.lua").write_text(LUA)
    (folder / "block").touch()
    calls = folder / "calls.txt"
    proc = daemon_process(
        LuaScripts=[str(folder / "script.lua")],
        CrashFolder=str(folder),
        OrthancPeers={"down": [DOWN]},
        PeerMaxRetries=0,
    ).start()
    client = proc.client()
    instance = client.post("/instances", data=make_dicom()).json()["ID"]
    wait_for(lambda: f"start {instance}" in lines(calls))
    job = store_async(client, "down", instance)
    wait_state(client, job, "Failure")
    lua = next(h for h in client.get("/events").json()["Handlers"] if h["Name"] == "lua")
    assert lua["Backlog"] >= 3  # NewInstance (in progress), JobSubmitted, JobFailure
    proc.kill(signal.SIGKILL)
    assert lines(calls) == [f"start {instance}"]
    (folder / "block").unlink()
    proc.start()
    wait_for(lambda: f"OnJobFailure {job}" in lines(calls))
    assert lines(calls) == [
        f"start {instance}",
        f"start {instance}",
        f"done {instance}",
        f"OnJobSubmitted {job}",
        f"OnJobFailure {job}",
    ]


def test_change_types_of_job_events() -> None:
    # Hidden (not in /changes) and numbered after dicomd's other own event, RecycledPatient.
    assert [int(t) for t in (ChangeType.JobSubmitted, ChangeType.JobSuccess)] == [8193, 8194]
    assert int(ChangeType.JobFailure) == 8195
    assert not any(t.in_log for t in ChangeType if t.is_job)
