"""``/peers``: Orthanc peers, and sending resources to them through durable jobs."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, request

from ..errors import BadRequest, NetworkProtocol
from ..peers.client import SendError
from .common import flag, json_response, services, text_response

blueprint = Blueprint("peers", __name__)


@blueprint.get("/peers")
def list_peers() -> Response:
    peers = services().peers.all()
    if flag("expand"):
        return json_response({name: peer.public() for name, peer in peers.items()})
    return json_response(list(peers))


@blueprint.get("/peers/<name>")
def peer_operations(name: str) -> Response:
    services().peers.get(name)
    return json_response(["configuration", "dead-letters", "store", "store-straight", "system"])


@blueprint.get("/peers/<name>/configuration")
def peer_configuration(name: str) -> Response:
    return json_response(services().peers.get(name).public())


@blueprint.put("/peers/<name>")
def put_peer(name: str) -> Response:
    services().peers.put(name, _json_body())
    return text_response()


@blueprint.delete("/peers/<name>")
def delete_peer(name: str) -> Response:
    services().peers.delete(name)
    return text_response()


@blueprint.get("/peers/<name>/system")
def peer_system(name: str) -> Response:
    peer = services().peers.get(name)
    try:
        answer = services().jobs.client.request(peer, "GET", "/system")
    except SendError as exc:
        raise NetworkProtocol(str(exc)) from None
    return Response(answer.body, content_type="application/json")


@blueprint.post("/peers/<name>/store")
def store(name: str) -> Response:
    """Orthanc's body forms: an ID, a JSON string or list of IDs, or an object."""
    options = _store_options()
    engine = services().jobs
    job = engine.submit_store(
        name,
        options["Resources"],
        priority=int(options.get("Priority", 0)),
        compress=bool(options.get("Compress", False)),
        permissive=bool(options.get("Permissive", False)),
        user_data=options.get("UserData"),
    )
    services().exports.log(options["Resources"], name)
    asynchronous = options.get("Asynchronous", not options.get("Synchronous", True))
    if asynchronous:
        return json_response({"ID": job.id, "Path": f"/jobs/{job.id}"})
    job = engine.wait(job.id, until_retry=True)
    if job.state != "Success":
        details = job.data["ErrorDetails"]
        if job.state == "Retry":
            details += f" (job {job.id} keeps retrying in the background)"
        raise NetworkProtocol(details)
    return json_response(engine.content(job))


def _store_options() -> dict[str, Any]:
    raw = request.get_data()
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace").strip()  # a bare ID
    if isinstance(body, str):
        body = [body]
    if isinstance(body, list):
        body = {"Resources": body}
    if not isinstance(body, dict) or not isinstance(body.get("Resources"), list):
        raise BadRequest('Expected an ID, a list of IDs, or an object with "Resources"')
    return body


@blueprint.post("/peers/<name>/store-straight")
def store_straight(name: str) -> Response:
    """Forward the DICOM file in the body as is, and answer what the peer answered."""
    peer = services().peers.get(name)
    try:
        answer = services().jobs.client.request(peer, "POST", "/instances", request.get_data())
    except SendError as exc:
        raise NetworkProtocol(str(exc)) from None
    return Response(answer.body, content_type="application/json")


@blueprint.get("/peers/<name>/dead-letters")
def dead_letters(name: str) -> Response:
    """dicomd's own: the jobs to this peer that failed, with their reason."""
    engine = services().jobs
    failed = [
        engine.describe(job)
        for job in engine.index.list_jobs()
        if job.state == "Failure" and job.data.get("Peer") == name
    ]
    return json_response(failed)


def _json_body() -> Any:
    try:
        return json.loads(request.get_data())
    except ValueError as exc:
        raise BadRequest(f"The body is not JSON: {exc}") from None
