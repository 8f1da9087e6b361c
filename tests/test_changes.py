"""The change log: Orthanc's change types, numbering, order and paging edges."""

from __future__ import annotations

import sqlite3

from dicomfactory import make_dataset, make_series, to_bytes


def upload(client, data: bytes) -> dict:
    return client.post("/instances", data=data).json()


def test_new_instance_logs_in_orthancs_order(client) -> None:
    a = upload(client, make_series(1)[0])
    log = client.get("/changes").json()
    assert [(c["ChangeType"], c["ResourceType"], c["ID"]) for c in log["Changes"]] == [
        ("NewInstance", "Instance", a["ID"]),
        ("NewSeries", "Series", a["ParentSeries"]),
        ("NewStudy", "Study", a["ParentStudy"]),
        ("NewPatient", "Patient", a["ParentPatient"]),
    ]
    assert [c["Seq"] for c in log["Changes"]] == [1, 2, 3, 4]
    assert log["Changes"][1]["Path"] == f"/series/{a['ParentSeries']}"
    assert log["Done"] is True and log["Last"] == 4 and log["First"] == 1
    # A duplicate logs nothing.
    client.post("/instances", data=make_series(1)[0])
    assert upload(client, make_series(1)[0])["Status"] == "Success"
    assert client.get("/changes?since=4").json()["Changes"][0]["ChangeType"] == "NewInstance"


def test_completed_series(client) -> None:
    series_uid = "1.2.3.4.5.6.7.8"
    study_uid = "1.2.3.4.5.6.7"
    files = []
    for number in (1, 2, 3):
        ds = make_dataset(study_uid=study_uid, series_uid=series_uid, instance_number=number)
        ds.ImagesInAcquisition = 3
        files.append(to_bytes(ds))
    answers = [upload(client, f) for f in files]
    kinds = [c["ChangeType"] for c in client.get("/changes").json()["Changes"]]
    assert kinds.count("CompletedSeries") == 1
    assert kinds[-2:] == ["NewInstance", "CompletedSeries"]
    assert client.get(f"/series/{answers[0]['ParentSeries']}").json()["Status"] == "Complete"


def test_paging_edges(client) -> None:
    for data in make_series(30):  # 30 NewInstance + 3 New* = 33 changes
        upload(client, data)
    page = client.get("/changes?since=0&limit=10").json()
    assert [c["Seq"] for c in page["Changes"]] == list(range(1, 11))
    assert page["Done"] is False and page["Last"] == 10 and page["First"] == 1
    page = client.get("/changes?since=30&limit=10").json()
    assert [c["Seq"] for c in page["Changes"]] == [31, 32, 33]
    assert page["Done"] is True and page["Last"] == 33
    exact = client.get("/changes?since=23&limit=10").json()
    assert exact["Done"] is True and exact["Last"] == 33
    beyond = client.get("/changes?since=1000&limit=5").json()
    assert beyond == {"Changes": [], "Done": True, "Last": 33}
    zero = client.get("/changes?since=0&limit=0").json()  # 0 means Orthanc's cap, 100
    assert len(zero["Changes"]) == 33 and zero["Done"] is True
    last = client.get("/changes?last").json()
    assert [c["Seq"] for c in last["Changes"]] == [33] and last["Last"] == 33
    assert client.get("/changes?since=abc").status_code == 400


def test_page_is_capped_at_100(client) -> None:
    for data in make_series(105):
        upload(client, data)
    page = client.get("/changes?limit=500").json()
    assert len(page["Changes"]) == 100 and page["Done"] is False and page["Last"] == 100
    rest = client.get(f"/changes?since={page['Last']}&limit=500").json()
    assert [c["Seq"] for c in rest["Changes"]] == list(range(101, 109))


def test_deleted_resources_leave_the_log_but_not_the_numbering(client) -> None:
    a = upload(client, make_series(1)[0])
    b = upload(client, make_series(1, patient_id="OTHER")[0])
    client.delete(f"/patients/{b['ParentPatient']}")
    log = client.get("/changes").json()
    assert {c["ID"] for c in log["Changes"]} == {
        a["ID"],
        a["ParentSeries"],
        a["ParentStudy"],
        a["ParentPatient"],
    }
    assert log["Last"] == 4
    # The 4 changes of B were numbered 5-8; its 4 Deleted events (in the event log, not in
    # /changes) take no number of /changes, as in Orthanc.
    assert client.get("/changes?since=4").json() == {"Changes": [], "Done": True, "Last": 8}
    c = upload(client, make_series(1, patient_id="THIRD")[0])
    assert client.get("/changes?since=4").json()["Changes"][0] | {"Date": ""} == {
        "ChangeType": "NewInstance",
        "Date": "",
        "ID": c["ID"],
        "Path": f"/instances/{c['ID']}",
        "ResourceType": "Instance",
        "Seq": 9,
    }


def test_clear_keeps_numbering(client) -> None:
    upload(client, make_series(1)[0])
    assert client.delete("/changes").status_code == 200
    assert client.get("/changes").json() == {"Changes": [], "Done": True, "Last": 4}
    assert client.get("/changes?last").json() == {"Changes": [], "Done": True, "Last": 4}
    upload(client, make_series(1)[0])
    assert client.get("/changes").json()["First"] == 5


def test_paging_uses_the_primary_key(daemon_client) -> None:
    """A page is a range scan of the sequence number, so it costs the same with a million
    changes as with ten (benchmarks/changes.py measures it)."""
    daemon, _client = daemon_client
    db = sqlite3.connect(daemon.index.path)
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT seq, change_type, level, public_id, date FROM changes "
        "WHERE seq > ? ORDER BY seq LIMIT ?",
        (0, 101),
    ).fetchall()
    db.close()
    assert "USING INTEGER PRIMARY KEY (rowid>?)" in plan[0][3]
