"""Protecting patients from recycling, as Orthanc's /patients/{id}/protected does."""

from __future__ import annotations

import sqlite3

from dicomfactory import make_dicom


def upload(client, **kwargs) -> dict:
    return client.post("/instances", data=make_dicom(**kwargs)).json()


def test_protect_and_unprotect(client) -> None:
    a = upload(client)
    url = f"/patients/{a['ParentPatient']}/protected"
    r = client.get(url)
    assert (r.status_code, r.text, r.headers["Content-Type"]) == (200, "0", "text/plain")
    assert client.get(f"/patients/{a['ParentPatient']}").json()["IsProtected"] is False
    for body, expected in ((b"1", "1"), (b"false", "0"), (b"true", "1"), (b"0", "0")):
        r = client.put(url, data=body)
        assert r.status_code == 200 and r.content == b""
        assert client.get(url).text == expected
    client.put(url, data=b"1")
    assert client.get(f"/patients/{a['ParentPatient']}").json()["IsProtected"] is True


def test_bad_body_and_wrong_resources(client) -> None:
    a = upload(client)
    bad = client.put(f"/patients/{a['ParentPatient']}/protected", data=b"abc")
    assert bad.status_code == 400
    assert bad.json()["Details"] == "Boolean value expected"
    assert bad.json()["OrthancError"] == "Bad file format"
    assert client.get(f"/patients/{a['ParentPatient']}/protected").text == "0"
    study = client.get(f"/studies/{a['ParentStudy']}/protected")
    assert study.status_code == 404  # only patients can be protected
    unknown = client.get("/patients/unknown/protected")
    assert unknown.status_code == 404 and unknown.json()["OrthancError"] == "Unknown resource"
    assert client.put("/patients/unknown/protected", data=b"1").status_code == 404


def test_unprotecting_moves_the_patient_to_the_end_of_the_recycling_order(
    daemon_client,
) -> None:
    daemon, client = daemon_client
    first = upload(client, patient_id="FIRST")["ParentPatient"]
    second = upload(client, patient_id="SECOND")["ParentPatient"]

    def order() -> list[str]:
        db = sqlite3.connect(daemon.index.path)
        rows = db.execute(
            "SELECT r.public_id FROM patients p JOIN resources r ON r.id = p.id "
            "ORDER BY p.recycling_order"
        ).fetchall()
        db.close()
        return [r[0] for r in rows]

    assert order() == [first, second]
    client.put(f"/patients/{first}/protected", data=b"1")
    client.put(f"/patients/{first}/protected", data=b"0")
    assert order() == [second, first]
    third = upload(client, patient_id="THIRD")["ParentPatient"]
    assert order() == [second, first, third]
