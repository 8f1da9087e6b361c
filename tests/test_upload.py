"""POST /instances on a real daemon: raw, gzip, ZIP, multipart, duplicates and errors."""

from __future__ import annotations

import gzip
import io
import zipfile

from dicomd.ids import ResourceIds
from storefiles import stored_files

from dicomfactory import make_dataset, make_dicom, make_series, to_bytes

# Orthanc's own test vector: DummyCT.dcm's identifiers and the IDs Orthanc gives it.
DUMMY_CT = {
    "patient_id": "ozp00SjY2xG",
    "study_uid": "1.2.840.113619.2.176.2025.1499492.7391.1171285944.390",
    "series_uid": "1.2.840.113619.2.176.2025.1499492.7391.1171285944.394",
    "sop_uid": "1.2.840.113619.2.176.2025.1499492.7040.1171286242.109",
}
DUMMY_CT_IDS = {
    "ID": "66a662ce-7430e543-bad44d47-0dc5a943-ec7a538d",
    "ParentSeries": "f2635388-f01d497a-15f7c06b-ad7dba06-c4c599fe",
    "ParentStudy": "b9c08539-26f93bde-c81ab0d7-bffaf2cb-a4d0bdd0",
    "ParentPatient": "6816cb19-844d5aee-85245eba-28e841e6-2414fae2",
}


def test_ids_match_orthanc_vector() -> None:
    ids = ResourceIds.compute(
        DUMMY_CT["patient_id"], DUMMY_CT["study_uid"], DUMMY_CT["series_uid"], DUMMY_CT["sop_uid"]
    )
    assert ids.instance == DUMMY_CT_IDS["ID"]
    assert ids.series == DUMMY_CT_IDS["ParentSeries"]
    assert ids.study == DUMMY_CT_IDS["ParentStudy"]
    assert ids.patient == DUMMY_CT_IDS["ParentPatient"]


def test_upload_answers_orthanc_ids_and_duplicate(client) -> None:
    data = make_dicom(**DUMMY_CT)
    r = client.post("/instances", data=data)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    answer = r.json()
    assert {k: answer[k] for k in DUMMY_CT_IDS} == DUMMY_CT_IDS
    assert answer["Status"] == "Success"
    assert answer["Path"] == "/instances/" + DUMMY_CT_IDS["ID"]

    again = client.post("/instances", data=data).json()
    assert again["Status"] == "AlreadyStored"
    assert again["ID"] == DUMMY_CT_IDS["ID"]
    assert client.get("/statistics").json()["CountInstances"] == 1
    assert client.get(f"/instances/{answer['ID']}/file").content == data


def test_overwrite_instances_replaces_the_file(make_daemon) -> None:
    daemon, client = make_daemon(OverwriteInstances=True)
    first = make_dataset(**DUMMY_CT)
    client.post("/instances", data=to_bytes(first))
    second = make_dataset(**DUMMY_CT)
    second.StudyDescription = "Changed"
    data = to_bytes(second)
    answer = client.post("/instances", data=data).json()
    assert answer["Status"] == "Success"
    assert client.get(f"/instances/{answer['ID']}/file").content == data
    stats = client.get("/statistics").json()
    assert stats["CountInstances"] == 1
    assert int(stats["TotalDiskSize"]) == len(data)
    stored = [p for p in stored_files(daemon.config.storage_directory)]
    assert len(stored) == 1


def test_gzip_body(client) -> None:
    data = make_dicom()
    r = client.post("/instances", data=gzip.compress(data), headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200
    assert client.get(f"/instances/{r.json()['ID']}/file").content == data


def test_bad_gzip_body_is_400(client) -> None:
    r = client.post("/instances", data=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400
    assert r.json()["OrthancError"] == "Bad file format"


def test_zip_answers_a_list_and_skips_non_dicom(client) -> None:
    files = make_series(3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, data in enumerate(files):
            archive.writestr(f"folder/img{i}.dcm", data)
        archive.writestr("README.txt", "not dicom")
        archive.writestr("DICOMDIR", b"whatever")
    r = client.post("/instances", data=buffer.getvalue())
    assert r.status_code == 200
    answers = r.json()
    assert isinstance(answers, list) and len(answers) == 3
    assert {a["Status"] for a in answers} == {"Success"}
    for answer, data in zip(answers, files, strict=True):
        assert client.get(f"/instances/{answer['ID']}/file").content == data


def test_multipart_form_upload(client) -> None:
    one, two = make_series(2)
    r = client.post("/instances", files={"file1": ("a.dcm", one), "file2": ("b.dcm", two)})
    assert r.status_code == 200
    answers = r.json()
    assert [a["Status"] for a in answers] == ["Success", "Success"]
    single = client.post("/instances", files={"f": ("c.dcm", make_dicom())}).json()
    assert single["Status"] == "Success"


def test_garbage_and_empty_uploads_are_400_and_store_nothing(daemon_client) -> None:
    daemon, client = daemon_client
    for body, details in (
        (b"\x00garbage" * 30, "Cannot parse an invalid DICOM file (size: 240 bytes)"),
        (b"", "Received an empty DICOM file"),
    ):
        r = client.post("/instances", data=body)
        assert r.status_code == 400
        error = r.json()
        assert error["HttpStatus"] == 400
        assert error["HttpError"] == "Bad Request"
        assert error["OrthancStatus"] == 15
        assert error["Message"] == "Bad file format"
        assert error["Method"] == "POST"
        assert error["Uri"] == "/instances"
        assert error["Details"] == details
    assert client.get("/statistics").json()["CountInstances"] == 0
    assert not stored_files(daemon.config.storage_directory)


def test_missing_uid_is_rejected(client) -> None:
    ds = make_dataset()
    del ds.SeriesInstanceUID
    r = client.post("/instances", data=to_bytes(ds))
    assert r.status_code == 400
    assert "SeriesInstanceUID" in r.json()["Details"]


def test_missing_patient_id_counts_as_empty(client) -> None:
    ds = make_dataset()
    del ds.PatientID
    answer = client.post("/instances", data=to_bytes(ds)).json()
    assert answer["ParentPatient"] == ResourceIds.compute("", "", "", "").patient


def test_core_metadata_written_at_store(client) -> None:
    answer = client.post("/instances", data=make_dicom(instance_number=7)).json()
    instance = client.get(f"/instances/{answer['ID']}").json()
    assert instance["IndexInSeries"] == 7
    assert instance["FileSize"] > 0
    assert len(instance["FileUuid"]) == 36
