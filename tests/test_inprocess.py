"""Scripts' in-process REST calls answer exactly what the same request over HTTP answers,
whether the route is served directly (metadata values) or through the Flask app."""

from __future__ import annotations

from dicomd.scripting.routes import ScriptResponse

from dicomfactory import make_dicom

CASES = [
    ("PUT", "/instances/{iid}/metadata/Sample", b"first", {}),
    ("GET", "/instances/{iid}/metadata/Sample", b"", {}),
    ("PUT", "/instances/{iid}/metadata/Sample", b"second", {}),
    ("GET", "/instances/{iid}/metadata/Sample", b"", {"If-None-Match": '"1"'}),
    ("PUT", "/instances/{iid}/metadata/Sample", b"third", {"If-Match": '"0"'}),
    ("PUT", "/instances/{iid}/metadata/Sample", b"\xff\xfe", {}),
    ("PUT", "/instances/{iid}/metadata/NoSuchName", b"x", {}),
    ("PUT", "/instances/{iid}/metadata/ReceptionDate", b"x", {}),
    ("GET", "/instances/{iid}/metadata/Missing", b"", {}),
    ("PUT", "/instances/0000-unknown/metadata/Sample", b"x", {}),
    ("GET", "//instances/{iid}/metadata/Sample/", b"", {}),
    ("DELETE", "/instances/{iid}/metadata/Sample", b"", {}),
    ("DELETE", "/instances/{iid}/metadata/Sample", b"", {}),
    ("GET", "/instances/{iid}/metadata", b"", {}),
    ("POST", "/instances/{iid}/metadata/Sample", b"", {}),
]

COMPARED_HEADERS = ("ETag", "Content-Type")


def test_in_process_answers_match_http(make_daemon) -> None:
    """Two daemons with the same instance get the same requests, one in process and one
    over HTTP: every answer is the same."""
    dicom = make_dicom()
    inner, inner_client = make_daemon(UserMetadata={"Sample": 1024})
    _outer, client = make_daemon(UserMetadata={"Sample": 1024})
    iid = client.post("/instances", data=dicom).json()["ID"]
    assert inner_client.post("/instances", data=dicom).json()["ID"] == iid
    rest = inner.rest_client()
    for method, uri, body, headers in CASES:
        uri = uri.format(iid=iid)
        inside = rest.call(method, uri, body, headers)
        outside = client.request(method, uri, data=body, headers=headers)
        assert (inside.status, inside.body) == (outside.status_code, outside.content), uri
        ours = {k.lower(): v for k, v in inside.headers.items()}
        for name in COMPARED_HEADERS:
            assert ours.get(name.lower()) == outside.headers.get(name), (method, uri, name)


def test_a_script_route_takes_precedence_over_a_direct_one(make_daemon) -> None:
    daemon, client = make_daemon(UserMetadata={"Sample": 1024})
    iid = client.post("/instances", data=make_dicom()).json()["ID"]
    rest = daemon.rest_client()
    rest.script_routes.add(
        "test",
        r"/instances/[^/]+/metadata/Sample",
        lambda request: ScriptResponse(body=b"scripted"),
    )
    answer = rest.call("GET", f"/instances/{iid}/metadata/Sample")
    assert answer.body == b"scripted", answer.body
    # Orthanc's RestApiGet with builtin: the built-in API only.
    assert rest.call("GET", f"/instances/{iid}/metadata/Sample", builtin=True).status == 404
