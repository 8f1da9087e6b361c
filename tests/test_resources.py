"""The resource API in Orthanc's shapes, on a real daemon."""

from __future__ import annotations

from pydicom.uid import generate_uid

from storefiles import stored_files

from dicomfactory import make_dataset, make_series, to_bytes


def upload_tree(client) -> dict:
    """Two studies of one patient: study A with 2 series (3 + 1 instances), study B with 1."""
    study_a, study_b = generate_uid(), generate_uid()
    series = [
        make_series(3, study_uid=study_a),
        make_series(1, study_uid=study_a),
        make_series(2, study_uid=study_b),
    ]
    answers = [[client.post("/instances", data=d).json() for d in s] for s in series]
    return {"files": series, "answers": answers}


def test_lists_and_paging(client) -> None:
    tree = upload_tree(client)
    instances = client.get("/instances").json()
    assert instances == [a["ID"] for s in tree["answers"] for a in s]
    assert len(client.get("/series").json()) == 3
    assert len(client.get("/studies").json()) == 2
    assert len(client.get("/patients").json()) == 1
    assert client.get("/instances?since=2&limit=2").json() == instances[2:4]
    expanded = client.get("/instances?expand&since=0&limit=1").json()
    assert expanded[0]["ID"] == instances[0] and expanded[0]["Type"] == "Instance"
    r = client.get("/instances?expand&limit=1")
    assert r.status_code == 400
    assert r.json()["Details"] == 'Missing "since" argument for GET request against: /instances/'
    assert client.get("/studies?expand").json()[0]["Type"] == "Study"


def test_resource_json_shapes(client) -> None:
    tree = upload_tree(client)
    first = tree["answers"][0][0]
    instance = client.get(f"/instances/{first['ID']}").json()
    assert set(instance) == {
        "FileSize",
        "FileUuid",
        "ID",
        "IndexInSeries",
        "MainDicomTags",
        "ParentSeries",
        "Type",
    }
    assert instance["MainDicomTags"]["InstanceNumber"] == "1"
    assert instance["MainDicomTags"]["ImagePositionPatient"] == "0\\0\\1"

    series = client.get(f"/series/{first['ParentSeries']}").json()
    assert set(series) == {
        "ExpectedNumberOfInstances",
        "ID",
        "Instances",
        "IsStable",
        "LastUpdate",
        "MainDicomTags",
        "ParentStudy",
        "Status",
        "Type",
    }
    assert series["Instances"] == [a["ID"] for a in tree["answers"][0]]
    assert series["MainDicomTags"]["Modality"] == "CT"
    assert series["Status"] == "Unknown" and series["ExpectedNumberOfInstances"] is None
    assert series["IsStable"] is False
    assert len(series["LastUpdate"]) == 15 and series["LastUpdate"][8] == "T"

    study = client.get(f"/studies/{first['ParentStudy']}").json()
    assert study["PatientMainDicomTags"]["PatientID"] == "PAT1"
    assert study["MainDicomTags"]["StudyDescription"] == "Test study"
    assert "PatientID" not in study["MainDicomTags"]
    assert len(study["Series"]) == 2

    patient = client.get(f"/patients/{first['ParentPatient']}").json()
    assert patient["MainDicomTags"]["PatientName"] == "Test^Patient"
    assert len(patient["Studies"]) == 2
    assert patient["IsProtected"] is False


def test_children_and_parents(client) -> None:
    tree = upload_tree(client)
    first = tree["answers"][0][0]
    patient = first["ParentPatient"]
    assert len(client.get(f"/patients/{patient}/instances").json()) == 6
    assert len(client.get(f"/patients/{patient}/series").json()) == 3
    studies = client.get(f"/patients/{patient}/studies").json()
    assert {s["ID"] for s in studies} == {
        first["ParentStudy"],
        tree["answers"][2][0]["ParentStudy"],
    }
    assert client.get(f"/instances/{first['ID']}/patient").json()["ID"] == patient
    assert client.get(f"/instances/{first['ID']}/study").json()["ID"] == first["ParentStudy"]
    assert client.get(f"/series/{first['ParentSeries']}/study").json()["Type"] == "Study"
    assert len(client.get(f"/studies/{first['ParentStudy']}/instances").json()) == 4


def test_series_status_from_expected_count(client) -> None:
    study, series = generate_uid(), generate_uid()
    files = []
    for n in (1, 2):
        ds = make_dataset(study_uid=study, series_uid=series, instance_number=n)
        ds.ImagesInAcquisition = 3
        files.append(to_bytes(ds))
    answer = [client.post("/instances", data=f).json() for f in files][0]
    body = client.get(f"/series/{answer['ParentSeries']}").json()
    assert body["ExpectedNumberOfInstances"] == 3
    assert body["Status"] == "Missing"
    ds = make_dataset(study_uid=study, series_uid=series, instance_number=3)
    client.post("/instances", data=to_bytes(ds))
    assert client.get(f"/series/{answer['ParentSeries']}").json()["Status"] == "Complete"


def test_tags_formats(client) -> None:
    ds = make_dataset(patient_name="Doe^Jane")
    answer = client.post("/instances", data=to_bytes(ds)).json()
    simplified = client.get(f"/instances/{answer['ID']}/simplified-tags").json()
    assert simplified["PatientName"] == "Doe^Jane"
    assert simplified["SOPInstanceUID"] == ds.SOPInstanceUID
    assert "PixelData" in simplified and simplified["PixelData"] is None
    assert client.get(f"/instances/{answer['ID']}/tags?simplify").json() == simplified
    full = client.get(f"/instances/{answer['ID']}/tags").json()
    assert full["0010,0010"] == {"Name": "PatientName", "Type": "String", "Value": "Doe^Jane"}
    short = client.get(f"/instances/{answer['ID']}/tags?short").json()
    assert short["0010,0020"] == "PAT1"


def test_statistics(client) -> None:
    tree = upload_tree(client)
    sizes = [len(d) for s in tree["files"] for d in s]
    stats = client.get("/statistics").json()
    assert stats["CountPatients"] == 1 and stats["CountStudies"] == 2
    assert stats["CountSeries"] == 3 and stats["CountInstances"] == 6
    assert stats["TotalDiskSize"] == str(sum(sizes))
    assert stats["TotalUncompressedSize"] == str(sum(sizes))
    assert stats["TotalDiskSizeMB"] == 0
    first = tree["answers"][0][0]
    series_stats = client.get(f"/series/{first['ParentSeries']}/statistics").json()
    assert series_stats["CountInstances"] == 3
    assert series_stats["DicomDiskSize"] == str(sum(len(d) for d in tree["files"][0]))
    patient_stats = client.get(f"/patients/{first['ParentPatient']}/statistics").json()
    assert (
        patient_stats["CountStudies"],
        patient_stats["CountSeries"],
        patient_stats["CountInstances"],
    ) == (2, 3, 6)
    assert patient_stats["DiskSize"] == str(sum(sizes))


def test_delete_removes_files_rows_and_empty_parents(daemon_client) -> None:
    daemon, client = daemon_client
    tree = upload_tree(client)
    first = tree["answers"][0][0]
    r = client.delete(f"/instances/{first['ID']}")
    assert r.json() == {
        "RemainingAncestor": {
            "ID": first["ParentSeries"],
            "Path": f"/series/{first['ParentSeries']}",
            "Type": "Series",
        }
    }
    assert client.get(f"/instances/{first['ID']}").status_code == 404
    lone_series = tree["answers"][1][0]
    r = client.delete(f"/series/{lone_series['ParentSeries']}")
    assert r.json()["RemainingAncestor"]["Type"] == "Study"
    r = client.delete(f"/patients/{first['ParentPatient']}")
    assert r.json() == {"RemainingAncestor": None}
    for level in ("patients", "studies", "series", "instances"):
        assert client.get(f"/{level}").json() == []
    stats = client.get("/statistics").json()
    assert stats["TotalDiskSize"] == "0" and stats["CountInstances"] == 0
    files = stored_files(daemon.config.storage_directory)
    assert files == []


def test_errors_follow_orthanc(client) -> None:
    r = client.get("/instances/does-not-exist")
    assert r.status_code == 404 and r.content == b""
    answer = client.post("/instances", data=to_bytes(make_dataset())).json()
    assert client.get(f"/patients/{answer['ID']}").status_code == 404
    assert client.delete("/instances/does-not-exist").status_code == 404
    r = client.get("/nonexistent")
    assert r.status_code == 404
    assert r.json()["OrthancStatus"] == 17 and r.json()["Uri"] == "/nonexistent"
    assert client.put("/instances", data=b"x").status_code == 405


def test_repeated_slashes_are_one_slash(client) -> None:
    answer = client.post("//instances", data=to_bytes(make_dataset())).json()
    r = client.get(f"/instances//{answer['ID']}/")
    assert r.status_code == 200 and r.json()["ID"] == answer["ID"]
    assert not r.history  # answered directly, not through a redirect


def test_system(client) -> None:
    system = client.get("/system").json()
    assert system["Version"] == "1.10.1"
    assert system["ApiVersion"] == 16
    assert system["DicomdVersion"]
    uid = client.get("/tools/generate-uid?level=series")
    assert uid.headers["Content-Type"].startswith("text/plain") and uid.text.startswith("1.2.")
