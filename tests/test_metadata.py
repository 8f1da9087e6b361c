"""Metadata at every level, with Orthanc's names, numbers, error codes and revisions."""

from __future__ import annotations

import hashlib
import re

import pytest

from dicomfactory import make_dicom, make_series

SAMPLE = {"UserMetadata": {"Sample": 1024, "Rôle": 1030}}


def upload(client, data: bytes) -> dict:
    answer = client.post("/instances", data=data).json()
    assert answer["Status"] == "Success"
    return answer


def etag(revision: int, value: str) -> str:
    return f'"{revision}-{hashlib.md5(value.encode()).hexdigest()}"'


def test_core_metadata_written_at_store_time(client) -> None:
    a = upload(client, make_dicom())
    meta = client.get(f"/instances/{a['ID']}/metadata?expand").json()
    assert meta["Origin"] == "RestApi"
    assert meta["RemoteIP"] == "127.0.0.1"
    assert meta["HttpUsername"] == ""
    assert meta["RemoteAET"] == ""
    assert meta["IndexInSeries"] == "1"
    assert meta["TransferSyntax"] == "1.2.840.10008.1.2.1"
    assert meta["SopClassUid"] == "1.2.840.10008.5.1.4.1.1.2"
    assert re.fullmatch(r"\d{8}T\d{6}", meta["ReceptionDate"])
    names = client.get(f"/instances/{a['ID']}/metadata").json()
    assert names[:3] == ["IndexInSeries", "ReceptionDate", "RemoteAET"]  # by number
    numbers = client.get(f"/instances/{a['ID']}/metadata?numeric").json()
    assert numbers[:3] == [1, 2, 3]
    by_number = client.get(f"/instances/{a['ID']}/metadata?expand&numeric").json()
    assert by_number["8"] == "RestApi"

    series = client.get(f"/series/{a['ParentSeries']}/metadata?expand").json()
    assert set(series) == {"LastUpdate", "RemoteAET"}
    for level, key in (("studies", "ParentStudy"), ("patients", "ParentPatient")):
        assert list(client.get(f"/{level}/{a[key]}/metadata?expand").json()) == ["LastUpdate"]
    assert client.get(f"/series/{a['ParentSeries']}").json()["LastUpdate"] == series["LastUpdate"]


def test_expected_number_of_instances_when_computable(client) -> None:
    from dicomfactory import make_dataset, to_bytes

    ds = make_dataset()
    ds.ImagesInAcquisition = 4
    a = upload(client, to_bytes(ds))
    value = client.get(f"/series/{a['ParentSeries']}/metadata/ExpectedNumberOfInstances")
    assert value.status_code == 200 and value.text == "4"


def test_user_metadata_by_name_and_number(make_daemon) -> None:
    _daemon, client = make_daemon(**SAMPLE)
    a = upload(client, make_dicom())
    base = f"/instances/{a['ID']}/metadata"
    assert client.get(f"{base}/1024").status_code == 404
    assert client.get(f"{base}/1024").content == b""

    r = client.put(f"{base}/1024", data=b"x")
    assert r.status_code == 200 and r.content == b"" and r.headers["ETag"] == etag(0, "x")
    assert client.get(f"{base}/Sample").text == "x"
    r = client.put(f"{base}/Sample", data=b"y")
    assert r.headers["ETag"] == etag(1, "y")
    r = client.get(f"{base}/1024")
    assert r.text == "y" and r.headers["Content-Type"].startswith("text/plain")
    assert r.headers["ETag"] == etag(1, "y")

    client.put(f"{base}/2000", data=b"z")  # a number without a name
    expanded = client.get(f"{base}?expand").json()
    assert expanded["Sample"] == "y" and expanded["2000"] == "z"
    assert "2000" in client.get(base).json()

    assert client.delete(f"{base}/1024").status_code == 200
    assert client.get(f"{base}/1024").status_code == 404
    again = client.delete(f"{base}/1024")
    assert again.status_code == 404 and again.json()["OrthancError"] == "Unknown resource"


def test_values_are_utf8_text(make_daemon) -> None:
    _daemon, client = make_daemon(**SAMPLE)
    a = upload(client, make_dicom())
    base = f"/studies/{a['ParentStudy']}/metadata"
    text = "Zürich — 東京 ✓\nsecond line"
    assert client.put(f"{base}/Rôle", data=text.encode()).status_code == 200
    r = client.get(f"{base}/1030")
    assert r.content.decode("utf-8") == text
    assert client.get(f"{base}?expand").json()["Rôle"] == text
    bad = client.put(f"{base}/1030", data=b"\xff\xfe\x00binary")
    assert bad.status_code == 400
    assert client.get(f"{base}/1030").content.decode() == text  # unchanged
    assert client.put(f"{base}/1031", data=b"").status_code == 200
    assert client.get(f"{base}/1031").content == b""


def test_core_metadata_is_read_only_and_names_are_exact(make_daemon) -> None:
    _daemon, client = make_daemon(**SAMPLE)
    a = upload(client, make_dicom())
    base = f"/instances/{a['ID']}/metadata"
    for name in ("ReceptionDate", "3", "1023", "65536", "0"):
        r = client.put(f"{base}/{name}", data=b"x")
        assert r.status_code == 403, name
        assert r.content == b""
    assert client.delete(f"{base}/ReceptionDate").status_code == 403
    unknown = client.put(f"{base}/Unknown", data=b"x")
    assert unknown.status_code == 404
    assert unknown.json()["OrthancError"] == "Accessing an inexistent item"
    assert client.get(f"{base}/RemoteAet").status_code == 404  # case-sensitive, as Orthanc
    assert client.get(f"{base}/RemoteAET").status_code == 200
    assert client.get(f"{base}/sample").status_code == 404


def test_unknown_or_wrong_level_resource_is_404(make_daemon) -> None:
    _daemon, client = make_daemon(**SAMPLE)
    a = upload(client, make_dicom())
    assert client.get(f"/series/{a['ID']}/metadata").status_code == 404
    assert client.put("/instances/nope/metadata/Sample", data=b"x").status_code == 404
    assert client.get("/patients/nope/metadata/Sample").status_code == 404


@pytest.mark.parametrize("level", ["patients", "studies", "series", "instances"])
def test_every_level(make_daemon, level: str) -> None:
    _daemon, client = make_daemon(**SAMPLE)
    a = upload(client, make_dicom())
    public_id = {
        "patients": a["ParentPatient"],
        "studies": a["ParentStudy"],
        "series": a["ParentSeries"],
        "instances": a["ID"],
    }[level]
    base = f"/{level}/{public_id}/metadata"
    assert client.put(f"{base}/Sample", data=level.encode()).status_code == 200
    assert client.get(f"{base}/Sample").text == level
    changes = client.get("/changes?limit=100").json()["Changes"]
    assert changes[-1]["ChangeType"] == "UpdatedMetadata"
    assert changes[-1]["ID"] == public_id
    assert changes[-1]["Path"] == f"/{level}/{public_id}"


def test_etags_and_revisions_without_check(make_daemon) -> None:
    _daemon, client = make_daemon(**SAMPLE)
    a = upload(client, make_dicom())
    url = f"/instances/{a['ID']}/metadata/Sample"
    tag0 = client.put(url, data=b"v0").headers["ETag"]
    r = client.get(url, headers={"If-None-Match": tag0})
    assert r.status_code == 304 and r.content == b"" and r.headers["ETag"] == tag0
    assert client.get(url, headers={"If-None-Match": etag(0, "other")}).status_code == 200
    assert client.get(url, headers={"If-None-Match": "garbage"}).status_code == 400
    # Without CheckRevisions an If-Match is optional, but a given one must be right.
    assert client.put(url, data=b"v1", headers={"If-Match": etag(7, "v0")}).status_code == 409
    assert client.put(url, data=b"v1", headers={"If-Match": tag0.strip('"')}).status_code == 200
    assert client.put(url, data=b"v2").headers["ETag"] == etag(2, "v2")
    assert client.delete(url, headers={"If-Match": etag(1, "v1")}).status_code == 409
    assert client.delete(url, headers={"If-Match": "1x-abc"}).status_code == 400
    assert client.delete(url).status_code == 200


def test_check_revisions(make_daemon) -> None:
    _daemon, client = make_daemon(CheckRevisions=True, **SAMPLE)
    a = upload(client, make_dicom())
    url = f"/series/{a['ParentSeries']}/metadata/Sample"
    first = client.put(url, data=b"one")  # a first write needs no If-Match
    assert first.status_code == 200
    conflict = client.put(url, data=b"two")
    assert conflict.status_code == 409
    assert conflict.json()["OrthancStatus"] == 43
    assert client.get(url).text == "one"
    second = client.put(url, data=b"two", headers={"If-Match": first.headers["ETag"]})
    assert second.status_code == 200 and second.headers["ETag"] == etag(1, "two")
    stale = client.put(url, data=b"three", headers={"If-Match": first.headers["ETag"]})
    assert stale.status_code == 409
    assert client.delete(url).status_code == 409  # If-Match is required
    assert client.delete(url, headers={"If-Match": first.headers["ETag"]}).status_code == 409
    assert client.delete(url, headers={"If-Match": second.headers["ETag"]}).status_code == 200
    assert client.get(url).status_code == 404


def test_metadata_goes_with_its_resource(make_daemon) -> None:
    _daemon, client = make_daemon(**SAMPLE)
    files = make_series(2)
    a, b = upload(client, files[0]), upload(client, files[1])
    client.put(f"/instances/{a['ID']}/metadata/Sample", data=b"a")
    client.delete(f"/instances/{a['ID']}")
    assert client.get(f"/instances/{a['ID']}/metadata/Sample").status_code == 404
    changes = client.get("/changes").json()["Changes"]
    assert all(c["ID"] != a["ID"] for c in changes)  # its changes went with it
    assert any(c["ID"] == b["ID"] for c in changes)
