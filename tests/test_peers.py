"""Peers and forwarding jobs, between two real dicomd daemons on loopback ports."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from dicomd.app import Daemon
from dicomd.config import load_config
from dicomd.peers import jobs as jobs_module
from dicomd.scripting.api import ScriptApi

from conftest import Client, free_port, wait_for, write_config
from dicomfactory import make_dicom, make_series


@pytest.fixture
def fast_retries(monkeypatch) -> None:
    monkeypatch.setattr(jobs_module, "backoff", lambda attempts: 0.2)


def new_instances(client) -> int:
    changes = client.get("/changes?limit=100").json()["Changes"]
    return sum(c["ChangeType"] == "NewInstance" for c in changes)


def upload(client, files: list[bytes]) -> list[dict]:
    return [client.post("/instances", data=f).json() for f in files]


def test_peer_definitions(make_daemon) -> None:
    _b, b_client = make_daemon()
    _a, client = make_daemon(
        OrthancPeers={
            "b": [b_client.base_url],
            "secured": {
                "Url": "http://127.0.0.1:1/",
                "Username": "u",
                "Password": "secret",
                "HttpHeaders": {"X-Token": "t"},
                "RemoteSelf": "a",
            },
        }
    )
    assert client.get("/peers").json() == ["b", "secured"]
    expanded = client.get("/peers?expand").json()
    assert expanded["secured"]["Password"] is None
    assert expanded["secured"]["HttpHeaders"] == ["X-Token"]
    assert expanded["secured"]["RemoteSelf"] == "a"
    assert "secret" not in json.dumps(expanded)
    assert client.get("/peers/b").json() == [
        "configuration",
        "dead-letters",
        "store",
        "store-straight",
        "system",
    ]
    assert client.get("/peers/b/system").json()["Name"] == "dicomd"
    assert client.put("/peers/c", json=["http://127.0.0.1:2/", "u", "p"]).status_code == 200
    assert client.put("/peers/d", json=["http://127.0.0.1:2/", "u"]).status_code == 400
    assert client.put("/peers/e", json={"Url": "ftp://x"}).status_code == 400
    assert client.get("/peers").json() == ["b", "c", "secured"]
    assert client.delete("/peers/secured").status_code == 200
    assert client.get("/peers").json() == ["b", "c"]
    assert client.get("/peers/secured").status_code == 404


def test_synchronous_and_asynchronous_stores_at_every_level(make_daemon) -> None:
    b, b_client = make_daemon()
    _a, client = make_daemon(OrthancPeers={"b": [b_client.base_url]})
    answers = upload(client, make_series(3) + make_series(2, patient_id="P2"))
    first = answers[0]
    r = client.post("/peers/b/store", data=first["ID"])  # a bare ID
    assert r.status_code == 200, r.text
    assert r.json()["InstancesCount"] == 1 and r.json()["FailedInstancesCount"] == 0
    assert client.post("/peers/b/store", json=first["ParentSeries"]).json()["InstancesCount"] == 3
    study = client.post("/peers/b/store", json=[first["ParentStudy"]]).json()
    assert study["InstancesCount"] == 3 and study["ParentResources"] == [first["ParentStudy"]]
    started = client.post(
        "/peers/b/store",
        json={"Resources": [answers[3]["ParentPatient"]], "Asynchronous": True, "UserData": "x"},
    ).json()
    assert started["Path"] == f"/jobs/{started['ID']}"
    wait_for(lambda: client.get(started["Path"]).json()["State"] == "Success")
    job = client.get(started["Path"]).json()
    assert job["Type"] == "OrthancPeerStore" and job["Progress"] == 100
    assert job["UserData"] == "x" and job["Content"]["InstancesCount"] == 2
    assert started["ID"] in client.get("/jobs").json()
    assert sorted(b_client.get("/instances").json()) == sorted(a["ID"] for a in answers)
    assert new_instances(b_client) == 5  # re-sent instances were AlreadyStored
    r = client.post("/peers/b/store", json=["nope"])
    assert r.status_code == 404


def test_store_straight_and_scripts_forward(make_daemon) -> None:
    _b, b_client = make_daemon()
    a, client = make_daemon(OrthancPeers={"b": [b_client.base_url]})
    data = make_dicom(patient_id="STRAIGHT")
    answer = client.post("/peers/b/store-straight", data=data).json()
    assert answer["Status"] == "Success"
    assert client.get("/instances").json() == []  # not stored locally
    stored = client.post("/instances", data=make_dicom(patient_id="SCRIPT")).json()
    job_id = ScriptApi(a.services, "Lua").forward(stored["ParentStudy"], "b")
    wait_for(lambda: client.get(f"/jobs/{job_id}").json()["State"] == "Success")
    assert client.get(f"/jobs/{job_id}").json()["Content"]["Description"] == "Lua"
    assert stored["ID"] in b_client.get("/instances").json()


def test_authentication_and_dead_letters(make_daemon) -> None:
    _b, b_client = make_daemon(AuthenticationEnabled=True, RegisteredUsers={"u": "pw"})
    _a, client = make_daemon(
        OrthancPeers={"good": [b_client.base_url, "u", "pw"], "bad": [b_client.base_url, "u", "x"]}
    )
    stored = client.post("/instances", data=make_dicom()).json()
    assert client.post("/peers/good/store", json=[stored["ID"]]).status_code == 200
    refused = client.post("/peers/bad/store", json=[stored["ID"]])
    assert refused.status_code == 500 and "401" in refused.json()["Details"]
    dead = client.get("/peers/bad/dead-letters").json()
    assert len(dead) == 1 and dead[0]["State"] == "Failure" and "401" in dead[0]["ErrorDetails"]
    assert client.get("/peers/good/dead-letters").json() == []


def test_retries_while_the_peer_is_down(tmp_path: Path, make_daemon, fast_retries) -> None:
    port = free_port()
    folder = tmp_path / "peer"
    folder.mkdir()
    config = load_config(write_config(folder, HttpPort=port, HttpProcesses=1))
    _a, client = make_daemon(OrthancPeers={"b": [f"http://127.0.0.1:{port}"]})
    files = make_series(20)
    answers = upload(client, files)
    job = client.post(
        "/peers/b/store", json={"Resources": [answers[0]["ParentSeries"]], "Asynchronous": True}
    ).json()
    wait_for(lambda: client.get(job["Path"]).json()["State"] == "Retry")
    status = client.get(job["Path"]).json()
    assert status["Attempts"] >= 1 and "NextAttempt" in status
    peer = Daemon(config)
    peer.start()
    try:
        wait_for(lambda: client.get(job["Path"]).json()["State"] == "Success", timeout=30)
        peer_client = Client(f"http://127.0.0.1:{port}")
        assert sorted(peer_client.get("/instances").json()) == sorted(a["ID"] for a in answers)
        assert new_instances(peer_client) == 20
    finally:
        peer.stop()


def test_jobs_can_be_paused_cancelled_resubmitted(make_daemon, fast_retries) -> None:
    _a, client = make_daemon(OrthancPeers={"down": ["http://127.0.0.1:9/"]})
    stored = client.post("/instances", data=make_dicom()).json()
    job = client.post("/peers/down/store", json={"Resources": [stored["ID"]], "Asynchronous": True})
    path = job.json()["Path"]
    wait_for(lambda: client.get(path).json()["State"] == "Retry")
    assert client.post(f"{path}/pause").json() == {}
    assert client.get(path).json()["State"] == "Paused"
    client.post(f"{path}/resume")
    assert client.get(path).json()["State"] in ("Pending", "Running", "Retry")
    assert client.delete(path).status_code == 400  # not completed yet
    client.post(f"{path}/cancel")
    wait_for(lambda: client.get(path).json()["State"] == "Failure")
    cancelled = client.get(path).json()
    assert (cancelled["ErrorCode"], cancelled["ErrorDescription"]) == (37, "This job was canceled")
    client.post(f"{path}/resubmit")
    assert client.get(path).json()["State"] in ("Pending", "Running", "Retry")
    client.post(f"{path}/cancel")
    wait_for(lambda: client.get(path).json()["State"] == "Failure")
    assert client.delete(path).status_code == 200
    assert client.get(path).status_code == 404


def test_a_forward_resumes_after_sigkill(make_daemon, daemon_process) -> None:
    _b, b_client = make_daemon()
    proc = daemon_process(HttpProcesses=1, OrthancPeers={"b": [b_client.base_url]}).start()
    client = proc.client()
    answers = upload(client, make_series(200, rows=64, cols=64))
    job = client.post(
        "/peers/b/store", json={"Resources": [answers[0]["ParentSeries"]], "Asynchronous": True}
    ).json()
    wait_for(lambda: len(b_client.get("/instances").json()) >= 20, step=0.01)
    proc.kill(signal.SIGKILL)
    sent_before = len(b_client.get("/instances").json())
    assert sent_before < 200
    proc.start()
    client = proc.client()
    wait_for(lambda: client.get(job["Path"]).json()["State"] == "Success", timeout=60)
    assert sorted(b_client.get("/instances").json()) == sorted(a["ID"] for a in answers)
    assert (
        sum(
            1
            for page in range(0, 400, 100)
            for c in b_client.get(f"/changes?since={page}&limit=100").json()["Changes"]
            if c["ChangeType"] == "NewInstance"
        )
        == 200
    )
