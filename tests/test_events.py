"""Durable delivery of notifications to handlers: order, payloads, failures, crashes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from dicomd.domain.model import ChangeType
from dicomd.events.delivery import _Worker
from dicomd.events.handlers import FunctionHandler

from conftest import wait_for
from dicomfactory import make_dicom, make_series

RECORDER = str(Path(__file__).parent / "event_recorder.py")


class Recorder:
    def __init__(self) -> None:
        self.events: list = []
        self.lock = threading.Lock()

    def __call__(self, event) -> None:
        with self.lock:
            self.events.append(
                {
                    "seq": event.seq,
                    "type": event.type,
                    "id": event.resource_id,
                    "tags": event.tags() if event.exists() else None,
                    "metadata": event.metadata() if event.exists() else None,
                    "origin": event.origin() if event.type is ChangeType.NewInstance else None,
                }
            )

    def types(self) -> list[ChangeType]:
        with self.lock:
            return [e["type"] for e in self.events]


def test_handlers_get_every_event_in_order_with_payloads(make_daemon) -> None:
    daemon, client = make_daemon(UserMetadata={"Note": 1024})
    recorder = Recorder()
    daemon.events.register(FunctionHandler("recorder", recorder))
    a = client.post("/instances", data=make_dicom(patient_name="Müller^Anna")).json()
    client.put(f"/studies/{a['ParentStudy']}/metadata/Note", data="ünïcode".encode())
    wait_for(lambda: len(recorder.types()) == 5)
    client.delete(f"/patients/{a['ParentPatient']}")
    expected = [
        ChangeType.NewInstance,
        ChangeType.NewSeries,
        ChangeType.NewStudy,
        ChangeType.NewPatient,
        ChangeType.UpdatedMetadata,
        ChangeType.Deleted,
        ChangeType.Deleted,
        ChangeType.Deleted,
        ChangeType.Deleted,
    ]
    wait_for(lambda: len(recorder.types()) >= len(expected))
    time.sleep(0.3)
    assert recorder.types() == expected
    seqs = [e["seq"] for e in recorder.events]
    assert seqs == sorted(seqs)
    deleted = [e["id"] for e in recorder.events if e["type"] is ChangeType.Deleted]
    assert deleted == [a["ID"], a["ParentSeries"], a["ParentStudy"], a["ParentPatient"]]
    stored = recorder.events[0]
    assert stored["tags"]["PatientName"] == "Müller^Anna"
    assert stored["metadata"]["Origin"] == "RestApi"
    assert stored["origin"] == {"RequestOrigin": "RestApi", "RemoteIp": "127.0.0.1", "Username": ""}
    assert recorder.events[4]["metadata"]["Note"] == "ünïcode"


def test_events_of_a_resource_deleted_before_delivery_are_skipped(make_daemon) -> None:
    daemon, client = make_daemon()
    release = threading.Event()
    recorder = Recorder()

    def gated(event) -> None:
        release.wait(30)
        recorder(event)

    daemon.events.register(FunctionHandler("gated", gated))
    kept = client.post("/instances", data=make_dicom(patient_id="KEPT")).json()
    gone = client.post("/instances", data=make_dicom(patient_id="GONE")).json()
    client.delete(f"/patients/{gone['ParentPatient']}")
    release.set()
    wait_for(lambda: recorder.types().count(ChangeType.Deleted) == 4)
    time.sleep(0.3)
    ids = [e["id"] for e in recorder.events if e["type"] is not ChangeType.Deleted]
    # The first event was taken before the deletion; the others of GONE are skipped.
    assert kept["ID"] in ids and gone["ParentSeries"] not in ids


def test_payloads_of_a_live_resource(make_daemon) -> None:
    daemon, client = make_daemon(UserMetadata={"Note": 1024})
    recorder = Recorder()
    daemon.events.register(
        FunctionHandler("recorder", recorder, frozenset({ChangeType.UpdatedMetadata}))
    )
    a = client.post("/instances", data=make_dicom(patient_name="Müller^Anna")).json()
    client.put(f"/series/{a['ParentSeries']}/metadata/Note", data=b"x")
    wait_for(lambda: recorder.events)
    event = recorder.events[0]
    assert event["id"] == a["ParentSeries"]
    assert event["tags"]["Modality"] == "CT"
    assert event["metadata"]["Note"] == "x"
    assert "LastUpdate" in event["metadata"]


def test_a_failing_handler_is_retried_then_recorded(make_daemon, monkeypatch) -> None:
    monkeypatch.setattr(_Worker, "RETRY_DELAYS", (0.05, 0.05))
    daemon, client = make_daemon()
    calls: list[int] = []
    good = Recorder()

    def bad(event) -> None:
        calls.append(event.seq)
        if event.type is ChangeType.NewSeries:
            raise RuntimeError("this script has a bug")

    daemon.events.register(FunctionHandler("bad", bad))
    daemon.events.register(FunctionHandler("good", good))
    for data in make_series(3):
        assert client.post("/instances", data=data).status_code == 200
    wait_for(lambda: len(good.types()) == 6 and len(calls) == 8)
    failures = client.get("/events/failures").json()
    assert len(failures) == 1
    assert failures[0]["Handler"] == "bad"
    assert failures[0]["ChangeType"] == "NewSeries"
    assert failures[0]["Attempts"] == 3
    assert "RuntimeError: this script has a bug" in failures[0]["Error"]
    wait_for(lambda: all(h["Backlog"] == 0 for h in client.get("/events").json()["Handlers"]))
    status = {h["Name"]: h for h in client.get("/events").json()["Handlers"]}
    assert status["bad"]["Failed"] == 1 and status["good"]["Delivered"] == 6


def test_a_slow_handler_does_not_slow_ingestion(make_daemon) -> None:
    daemon, client = make_daemon()
    release = threading.Event()
    daemon.events.register(FunctionHandler("stuck", lambda _event: release.wait(30)))
    start = time.monotonic()
    for data in make_series(10):
        assert client.post("/instances", data=data).json()["Status"] == "Success"
    elapsed = time.monotonic() - start
    backlog = client.get("/events").json()["Handlers"][0]["Backlog"]
    release.set()
    assert backlog > 0
    assert elapsed < 10


def test_delivery_resumes_after_sigkill(daemon_process, tmp_path: Path) -> None:
    output = tmp_path / "delivered.txt"
    proc = daemon_process(HttpProcesses=1).start(program=[RECORDER, str(output), "0.1"])
    client = proc.client()
    answers = [client.post("/instances", data=d).json() for d in make_series(20)]
    # 20 NewInstance + NewSeries/NewStudy/NewPatient = 23 events at 0.1 s each
    wait_for(lambda: output.exists() and len(output.read_text().splitlines()) >= 5)
    proc.kill()
    delivered_before = len(output.read_text().splitlines())
    assert delivered_before < 23
    proc.start(program=[RECORDER, str(output)])
    wait_for(lambda: len({line.split()[0] for line in output.read_text().splitlines()}) == 23)
    lines = output.read_text().splitlines()
    seqs = [int(line.split()[0]) for line in lines]
    assert sorted(set(seqs)) == list(range(1, 24))  # every event, at least once
    # In order within each run; the second run starts where the last saved position was,
    # so at most the events of the last save interval are delivered twice.
    first, second = seqs[:delivered_before], seqs[delivered_before:]
    assert first == list(range(1, len(first) + 1))
    assert second == list(range(second[0], 24))
    assert first[-1] - 5 < second[0] <= first[-1] + 1
    ids = {line.split()[3] for line in lines if line.split()[1] == "NewInstance"}
    assert ids == {a["ID"] for a in answers}
    proc.kill()


def test_a_new_handler_starts_at_the_end_and_keeps_its_position(make_daemon) -> None:
    daemon, client = make_daemon()
    client.post("/instances", data=make_dicom())
    first = Recorder()
    daemon.events.register(FunctionHandler("late", first))
    time.sleep(0.3)
    assert first.types() == []  # history is not replayed to a new handler
    daemon.events.unregister("late")
    client.post("/instances", data=make_dicom(patient_id="OTHER"))
    again = Recorder()
    daemon.events.register(FunctionHandler("late", again))
    wait_for(lambda: len(again.types()) == 4)  # it catches up from its saved position


def test_periodic_jobs_run_and_survive_errors(make_daemon) -> None:
    daemon, _client = make_daemon()
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(time.monotonic())
        if len(ticks) == 2:
            raise RuntimeError("a failing tick is logged and runs again")

    daemon.scheduler.every("heartbeat-test", 0.2, tick)
    wait_for(lambda: len(ticks) >= 4, timeout=5)
    daemon.scheduler.cancel("heartbeat-test")
    count = len(ticks)
    time.sleep(0.5)
    assert len(ticks) <= count + 1


def test_every_process_reports_the_handlers(daemon_process, tmp_path: Path) -> None:
    import requests

    output = tmp_path / "delivered.txt"
    proc = daemon_process(HttpProcesses=2).start(program=[RECORDER, str(output)])
    proc.client().post("/instances", data=make_dicom())
    wait_for(lambda: output.exists() and len(output.read_text().splitlines()) == 4)
    for _ in range(12):  # fresh connections land on either process
        status = requests.get(proc.url + "/events", timeout=10).json()
        assert [h["Name"] for h in status["Handlers"]] == ["recorder"]
    proc.kill()
