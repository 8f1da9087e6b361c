"""HTTP requests to the direct routes (uploads, metadata values) skip Flask when nothing
but the view has a say; they answer exactly what the Flask app answers, and
authentication, HTTP filters and script routes still apply to them."""

from __future__ import annotations

import gzip
import io
import zipfile

from flask import request

from dicomd.scripting.routes import ScriptResponse

from dicomfactory import make_dicom

USERS = {"alice": "secret"}
COMPARED_HEADERS = ("Content-Type", "ETag")


def _zip(*files: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, data in enumerate(files):
            archive.writestr(f"f{i}.dcm", data)
        archive.writestr("readme.txt", b"not DICOM")
    return buffer.getvalue()


def _cases(first: bytes, second: bytes) -> list[tuple[str, str, bytes, dict[str, str]]]:
    return [
        ("POST", "/instances", first, {"Content-Type": "application/dicom"}),
        ("POST", "/instances", first, {}),  # already stored
        ("POST", "/instances", gzip.compress(second), {"Content-Encoding": "gzip"}),
        ("POST", "/instances", b"garbage", {}),
        ("POST", "/instances", b"", {}),
        ("POST", "/instances", b"\x1f\x8b broken", {"Content-Encoding": "gzip"}),
        ("POST", "/instances", first, {"Content-Encoding": "br"}),
        ("POST", "/instances", _zip(first, make_dicom(patient_id="Z")), {}),
        ("POST", "//instances/", first, {}),
        ("PUT", "/instances/{iid}/metadata/Sample", b"first", {}),
        ("GET", "/instances/{iid}/metadata/Sample", b"", {}),
        ("GET", "/instances/{iid}/metadata/Sample", b"", {"If-None-Match": '"1"'}),
        ("PUT", "/instances/{iid}/metadata/Sample", b"x", {"If-Match": '"0"'}),
        ("PUT", "/instances/{iid}/metadata/Sample", b"\xff\xfe", {}),
        ("PUT", "/instances/{iid}/metadata/ReceptionDate", b"x", {}),
        ("GET", "/instances/{iid}/metadata/Missing", b"", {}),
        ("PUT", "/instances/0000-unknown/metadata/Sample", b"x", {}),
        ("DELETE", "/instances/{iid}/metadata/Sample", b"", {}),
        ("DELETE", "/instances/{iid}/metadata/Sample", b"", {}),
    ]


def test_direct_answers_match_flask(make_daemon) -> None:
    """The same requests to a daemon without authentication (direct) and to one with it
    (every request through Flask) get the same answers, errors included."""
    direct_daemon, direct = make_daemon(UserMetadata={"Sample": 1024})
    flask_daemon, flask = make_daemon(
        UserMetadata={"Sample": 1024},
        AuthenticationEnabled=True,
        RegisteredUsers=USERS,
    )
    flask.auth = ("alice", "secret")
    through_flask = {"direct": [], "flask": []}
    for name, daemon in (("direct", direct_daemon), ("flask", flask_daemon)):
        daemon._flask_app().before_request(
            lambda seen=through_flask[name]: seen.append(request.path)  # type: ignore[misc]
        )
    first, second = make_dicom(patient_id="A"), make_dicom(patient_id="B")
    iid = ""
    for method, uri, body, headers in _cases(first, second):
        uri = uri.format(iid=iid)
        ours = direct.request(method, uri, data=body, headers=headers)
        theirs = flask.request(method, uri, data=body, headers=headers)
        assert (ours.status_code, ours.content) == (theirs.status_code, theirs.content), (
            method,
            uri,
        )
        for name in COMPARED_HEADERS:
            assert ours.headers.get(name) == theirs.headers.get(name), (method, uri, name)
        if not iid and ours.status_code == 200 and method == "POST":
            iid = ours.json()["ID"]
    assert iid
    # Every request went through Flask on the daemon with authentication, none on the other.
    assert len(through_flask["flask"]) == len(_cases(b"", b""))
    assert through_flask["direct"] == []


def test_uploads_record_where_they_came_from(make_daemon) -> None:
    _daemon, client = make_daemon()
    iid = client.post("/instances", data=make_dicom()).json()["ID"]
    metadata = client.get(f"/instances/{iid}/metadata?expand").json()
    assert metadata["Origin"] == "RestApi"
    assert metadata["RemoteIP"] == "127.0.0.1"
    assert metadata["HttpUsername"] == ""


def test_authentication_still_guards_uploads(make_daemon) -> None:
    _daemon, client = make_daemon(AuthenticationEnabled=True, RegisteredUsers=USERS)
    refused = client.post("/instances", data=make_dicom())
    assert refused.status_code == 401
    assert client.get("/statistics", auth=("alice", "secret")).json()["CountInstances"] == 0
    answer = client.post("/instances", data=make_dicom(), auth=("alice", "secret"))
    iid = answer.json()["ID"]
    metadata = client.get(f"/instances/{iid}/metadata?expand", auth=("alice", "secret"))
    assert metadata.json()["HttpUsername"] == "alice"


def test_http_filters_still_apply_to_uploads(make_daemon) -> None:
    daemon, client = make_daemon()
    seen: list[tuple[str, str]] = []

    def refuse_uploads(method: str, uri: str, ip: str, user: str, headers: dict) -> bool:
        seen.append((method, uri))
        return method != "POST"

    daemon.filters.add_http_filter("test", refuse_uploads)
    assert client.post("/instances", data=make_dicom()).status_code == 403
    assert ("POST", "/instances") in seen
    daemon.filters.remove("test")
    assert client.post("/instances", data=make_dicom()).status_code == 200


def test_a_script_route_still_takes_precedence(make_daemon) -> None:
    daemon, client = make_daemon()
    daemon.rest_client().script_routes.add(
        "test", r"/instances", lambda request: ScriptResponse(body=b"scripted")
    )
    answer = client.post("/instances", data=make_dicom())
    assert answer.content == b"scripted"
    assert client.get("/statistics").json()["CountInstances"] == 0


def test_multipart_uploads_go_through_flask(make_daemon) -> None:
    _daemon, client = make_daemon()
    files = {"a": ("a.dcm", make_dicom(patient_id="M1")), "b": ("b.dcm", make_dicom())}
    answers = client.post("/instances", files=files).json()
    assert [a["Status"] for a in answers] == ["Success", "Success"]


def test_chunked_uploads_are_read_whole(make_daemon) -> None:
    """A body sent in chunks (no Content-Length) is stored, with or without Flask."""
    for settings in ({}, {"AuthenticationEnabled": True, "RegisteredUsers": USERS}):
        _daemon, client = make_daemon(**settings)
        data = make_dicom()
        chunks = (data[i : i + 1000] for i in range(0, len(data), 1000))
        answer = client.post("/instances", data=chunks, auth=("alice", "secret"))
        assert answer.status_code == 200, answer.text
        assert (
            client.get(f"/instances/{answer.json()['ID']}/file", auth=("alice", "secret")).content
            == data
        )
