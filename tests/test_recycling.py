"""Recycling by patient count and by size, protection, Reject mode, and the filter hook."""

from __future__ import annotations

from dicomd.domain.model import ChangeType
from dicomd.events.handlers import FunctionHandler
from storefiles import stored_files

from conftest import wait_for
from dicomfactory import make_dicom


def store(client, patient: str, **kwargs) -> dict:
    r = client.post("/instances", data=make_dicom(patient_id=patient, **kwargs))
    assert r.status_code == 200, r.text
    return r.json()


def patient_ids(client) -> list[str]:
    return sorted(p["MainDicomTags"]["PatientID"] for p in client.get("/patients?expand").json())


def test_recycles_the_oldest_patient_by_count(make_daemon) -> None:
    daemon, client = make_daemon(MaximumPatientCount=2)
    seen: list = []
    daemon.events.register(
        FunctionHandler(
            "recycled",
            lambda e: seen.append((e.type, e.resource_id, e.tags(), e.metadata())),
            frozenset({ChangeType.RecycledPatient, ChangeType.Deleted}),
        )
    )
    a = store(client, "A")
    store(client, "B")
    store(client, "C")
    assert patient_ids(client) == ["B", "C"]
    wait_for(lambda: any(kind is ChangeType.RecycledPatient for kind, *_ in seen))
    deleted = {rid for kind, rid, *_ in seen if kind is ChangeType.Deleted}
    assert deleted == {a["ID"], a["ParentSeries"], a["ParentStudy"], a["ParentPatient"]}
    _, rid, tags, metadata = next(s for s in seen if s[0] is ChangeType.RecycledPatient)
    assert rid == a["ParentPatient"]
    assert tags["PatientID"] == "A"
    assert "LastUpdate" in metadata


def test_storing_into_a_patient_moves_it_to_the_end(make_daemon) -> None:
    _daemon, client = make_daemon(MaximumPatientCount=2)
    store(client, "A")
    store(client, "B")
    store(client, "A")  # a new instance of A: no new patient, and A is now the newest
    assert patient_ids(client) == ["A", "B"]
    store(client, "C")
    assert patient_ids(client) == ["A", "C"]


def test_protected_patients_are_never_recycled(make_daemon) -> None:
    daemon, client = make_daemon(MaximumPatientCount=2)
    a = store(client, "A")
    b = store(client, "B")
    client.put(f"/patients/{a['ParentPatient']}/protected", data=b"1")
    store(client, "C")
    assert patient_ids(client) == ["A", "C"]
    c = client.get("/patients").json()
    assert b["ParentPatient"] not in c
    client.put(f"/patients/{patient_of(client, 'C')}/protected", data=b"1")
    before = stored_files(daemon.config.storage_directory)
    full = client.post("/instances", data=make_dicom(patient_id="D"))
    assert full.status_code == 507
    assert full.json()["OrthancError"] == "The file storage is full"
    assert patient_ids(client) == ["A", "C"]
    assert stored_files(daemon.config.storage_directory) == before  # nothing half-stored


def patient_of(client, patient_id: str) -> str:
    for p in client.get("/patients?expand").json():
        if p["MainDicomTags"]["PatientID"] == patient_id:
            return p["ID"]
    raise AssertionError(patient_id)


def test_recycles_by_size(make_daemon) -> None:
    daemon, client = make_daemon(MaximumStorageSize=1)  # 1 MB
    size = len(make_dicom(rows=256, cols=256))  # about 130 kB each
    for number in range(12):
        store(client, f"P{number:02}", rows=256, cols=256)
        total = int(client.get("/statistics").json()["TotalDiskSize"])
        assert total <= 1024 * 1024
    ids = patient_ids(client)
    assert ids[-1] == "P11" and len(ids) == (1024 * 1024) // size
    assert ids == [f"P{n:02}" for n in range(12 - len(ids), 12)]  # the oldest went first


def test_an_instance_larger_than_the_limit_is_refused(make_daemon) -> None:
    _daemon, client = make_daemon(MaximumStorageSize=1)
    store(client, "A")
    r = client.post("/instances", data=make_dicom(patient_id="BIG", rows=1024, cols=1024))
    assert r.status_code == 507
    assert patient_ids(client) == ["A"]  # nobody was recycled for nothing


def test_reject_mode(make_daemon) -> None:
    daemon, client = make_daemon(MaximumPatientCount=1, MaximumStorageMode="Reject")
    store(client, "A")
    before = stored_files(daemon.config.storage_directory)
    r = client.post("/instances", data=make_dicom(patient_id="B"))
    assert r.status_code == 507 and r.json()["HttpStatus"] == 507
    assert patient_ids(client) == ["A"]
    assert stored_files(daemon.config.storage_directory) == before
    store(client, "A")  # more instances of a stored patient still fit


def test_recycling_filter_can_keep_a_patient(make_daemon) -> None:
    daemon, client = make_daemon(MaximumPatientCount=2)
    asked: list[str] = []

    def keep_a(patient_id: str, tags: dict, metadata: dict) -> bool:
        asked.append(tags["PatientID"])
        return tags["PatientID"] != "A"

    def broken(patient_id: str, tags: dict, metadata: dict) -> bool:
        raise RuntimeError("a broken filter counts as 'allow'")

    daemon.filters.add_recycling_filter("keep-a", keep_a)
    daemon.filters.add_recycling_filter("broken", broken)
    store(client, "A")
    store(client, "B")
    store(client, "C")
    assert patient_ids(client) == ["A", "C"]
    assert asked == ["A", "B"]
    daemon.filters.add_recycling_filter("keep-all", lambda *_: False)
    assert client.post("/instances", data=make_dicom(patient_id="D")).status_code == 507
