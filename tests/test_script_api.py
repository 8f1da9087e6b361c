"""The API that Lua and Python scripts share, the filters they register, and the in-process
REST calls they make, on a real daemon."""

from __future__ import annotations

import json

from dicomd.scripting.actions import ACTION_KINDS
from dicomd.scripting.api import ScriptApi

from dicomfactory import make_dicom


def test_actions(make_daemon) -> None:
    daemon, client = make_daemon(
        CheckRevisions=True, UserMetadata={"Route": 1024}, UserContentType={"report": 1025}
    )
    api = ScriptApi(daemon.services, "Lua")
    a = client.post("/instances", data=make_dicom()).json()
    assert api.describe(a["ParentSeries"])["Type"] == "Series"
    # Scripts write unconditionally, even with CheckRevisions.
    api.set_metadata(a["ID"], "Route", "pacs")
    api.set_metadata(a["ID"], "Route", "archive")
    assert api.get_metadata(a["ID"], "Route") == "archive"
    assert client.get(f"/instances/{a['ID']}/metadata/1024").text == "archive"
    assert api.delete_metadata(a["ID"], "Route") is True
    assert api.delete_metadata(a["ID"], "Route") is False
    api.add_attachment(a["ParentStudy"], "report", b"%PDF-1.4 ...")
    assert client.get(f"/studies/{a['ParentStudy']}/attachments/report/data").content == (
        b"%PDF-1.4 ..."
    )
    api.set_protected(a["ParentPatient"], True)
    assert client.get(f"/patients/{a['ParentPatient']}/protected").text == "1"
    assert api.delete(a["ID"])["RemainingAncestor"] is None
    assert client.get("/patients").json() == []
    assert len(api.generate_uid("series")) > 10
    assert api.configuration()["CheckRevisions"] is True


def test_in_process_rest(make_daemon) -> None:
    daemon, client = make_daemon(AuthenticationEnabled=True, RegisteredUsers={"alice": "secret"})
    assert client.get("/system").status_code == 401
    api = ScriptApi(daemon.services, "Lua")
    answer = api.rest("GET", "/system")
    assert answer.status == 200 and json.loads(answer.body)["Name"] == "dicomd"
    stored = api.rest("POST", "/instances", make_dicom())
    instance = json.loads(stored.body)["ID"]
    assert api.rest("GET", f"/instances/{instance}/metadata/Origin").body == b"Lua"
    assert api.rest("GET", "/instances?expand&since=0&limit=1").ok
    assert api.rest("GET", "/nope").status == 404
    assert api.rest("DELETE", f"/instances/{instance}").status == 200


def test_instance_filters(make_daemon) -> None:
    daemon, client = make_daemon()
    seen: list = []

    def no_mr(tags: dict, origin: dict, info: dict) -> bool:
        seen.append((tags["PatientID"], origin, info))
        return tags["PatientID"] != "REJECT"

    def broken(tags: dict, origin: dict, info: dict) -> bool:
        raise RuntimeError("a failing filter lets the instance in")

    daemon.filters.add_instance_filter("no-reject", no_mr)
    daemon.filters.add_instance_filter("broken", broken)
    refused = client.post("/instances", data=make_dicom(patient_id="REJECT"))
    assert refused.status_code == 200 and refused.json()["Status"] == "FilteredOut"
    assert client.get("/instances").json() == []
    kept = client.post("/instances", data=make_dicom(patient_id="KEEP")).json()
    assert kept["Status"] == "Success"
    _, origin, info = seen[0]
    assert origin == {"RequestOrigin": "RestApi", "RemoteIp": "127.0.0.1", "Username": ""}
    assert info == {"HasPixelData": True, "TransferSyntaxUID": "1.2.840.10008.1.2.1"}
    daemon.filters.remove("no-reject")
    assert client.post("/instances", data=make_dicom(patient_id="REJECT")).json()["Status"] == (
        "Success"
    )


def test_http_filters(make_daemon) -> None:
    daemon, client = make_daemon()
    calls: list = []

    def read_only(method: str, uri: str, ip: str, username: str, headers: dict) -> bool:
        calls.append((method, uri, ip, username, headers.get("x-test")))
        return method == "GET"

    daemon.filters.add_http_filter("read-only", read_only)
    assert client.get("/system", headers={"X-Test": "1"}).status_code == 200
    assert client.post("/instances", data=make_dicom()).status_code == 403
    assert calls[0] == ("GET", "/system", "127.0.0.1", "", "1")
    # Scripts' own in-process calls are not filtered.
    assert ScriptApi(daemon.services, "Lua").rest("POST", "/instances", make_dicom()).ok


def test_actions_are_recorded_and_dry_runs_change_nothing(make_daemon) -> None:
    from dicomd.scripting.actions import ActionLog
    from storefiles import stored_files

    daemon, client = make_daemon(UserMetadata={"Route": 1024}, OrthancPeers={"p": ["http://x/"]})
    a = client.post("/instances", data=make_dicom()).json()
    api = ScriptApi(daemon.services, "Lua")
    daemon.services.action_log = ActionLog(dry={"forward", "delete"})
    api.set_metadata(a["ID"], "Route", "pacs")
    assert api.forward(a["ParentStudy"], "p") == "dry-run"
    api.delete(a["ParentPatient"])
    kinds = [(x.kind, x.target, x.executed) for x in daemon.services.action_log.actions()]
    assert kinds == [
        ("set-metadata", a["ID"], True),
        ("forward", a["ParentStudy"], False),
        ("delete", a["ParentPatient"], False),
    ]
    assert client.get("/jobs").json() == []
    assert client.get("/patients").json() == [a["ParentPatient"]]

    daemon.services.action_log = ActionLog(dry=ACTION_KINDS)
    before = stored_files(daemon.config.storage_directory)
    changes = client.get("/changes").json()["Last"]
    api.set_metadata(a["ID"], "Route", "other")
    api.add_attachment(a["ID"], "1030", b"x")
    api.set_protected(a["ParentPatient"], True)
    assert api.rest("PUT", f"/instances/{a['ID']}/metadata/Route", b"rest").ok
    assert json.loads(api.rest("GET", "/statistics").body)["CountInstances"] == 1
    assert client.get(f"/instances/{a['ID']}/metadata/Route").text == "pacs"
    assert client.get(f"/patients/{a['ParentPatient']}/protected").text == "0"
    assert stored_files(daemon.config.storage_directory) == before
    assert client.get("/changes").json()["Last"] == changes
    assert [x.kind for x in daemon.services.action_log.actions()] == [
        "set-metadata",
        "add-attachment",
        "protect",
        "rest",
    ]
