"""Loopback only by default; HTTP Basic authentication when enabled."""

from __future__ import annotations

import socket

from dicomfactory import make_dicom


def test_listens_on_loopback_only_by_default(daemon_client) -> None:
    daemon, _client = daemon_client
    assert daemon.config.bind_address == "127.0.0.1"
    # The listening socket itself is bound to loopback, not to every interface.
    listening = daemon._http._server.socket  # type: ignore[union-attr]
    assert listening.getsockname()[0] == "127.0.0.1"
    assert listening.family == socket.AF_INET


def test_basic_auth(make_daemon) -> None:
    _daemon, client = make_daemon(AuthenticationEnabled=True, RegisteredUsers={"alice": "s3cret"})
    r = client.get("/system")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert client.get("/system", auth=("alice", "wrong")).status_code == 401
    assert client.get("/system", auth=("bob", "s3cret")).status_code == 401
    client.auth = ("alice", "s3cret")
    assert client.get("/system").status_code == 200
    answer = client.post("/instances", data=make_dicom()).json()
    metadata = client.get(f"/instances/{answer['ID']}").json()
    assert metadata["ID"] == answer["ID"]


def test_401_then_retry_on_the_same_connection(make_daemon) -> None:
    _daemon, client = make_daemon(AuthenticationEnabled=True, RegisteredUsers={"u": "p"})
    data = make_dicom()
    first = client.post("/instances", data=data)
    assert first.status_code == 401
    client.auth = ("u", "p")
    second = client.post("/instances", data=data)
    assert second.status_code == 200
