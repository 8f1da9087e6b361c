"""``POST /instances`` (raw DICOM, gzip, ZIP, multipart) and the instance-only endpoints."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

from flask import Blueprint, Response, g, request

from ..errors import BadFileFormat
from ..model import Origin
from .common import daemon, flag, json_response, set_download_name
from .inprocess import ORIGIN_KEY
from .server import read_body

blueprint = Blueprint("instances", __name__)


def _request_origin() -> Origin:
    inside = request.environ.get(ORIGIN_KEY)
    if inside is not None:
        return Origin(request_origin=inside)  # a script's in-process call ("Lua"...)
    return Origin(
        request_origin="RestApi",
        remote_ip=request.remote_addr or "",
        username=getattr(g, "username", ""),
    )


def _bodies() -> list[bytes]:
    """The uploaded files: the body itself, or each part of a multipart form."""
    if request.mimetype == "multipart/form-data":
        return [part.read() for part in request.files.values()]
    data = read_body(request.environ)
    if data is None:
        data = request.get_data(cache=False)
    encoding = request.headers.get("Content-Encoding", "").lower()
    if encoding == "gzip":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise BadFileFormat(f"Cannot decompress the gzip body: {exc}") from exc
    elif encoding not in ("", "identity"):
        raise BadFileFormat(f"Unsupported Content-Encoding: {encoding}")
    return [data]


@blueprint.post("/instances")
def upload() -> Response:
    """Store DICOM files; a ZIP or several parts answer a list, as Orthanc does."""
    pipeline = daemon().ingest
    origin = _request_origin()
    bodies = _bodies()
    if not bodies:
        raise BadFileFormat("Received an empty DICOM file")
    answers: list[dict[str, Any]] = []
    many = len(bodies) != 1
    for body in bodies:
        result = pipeline.ingest_upload(body, origin)
        if isinstance(result, list):
            many = True
            answers += [r.answer() for r in result]
        else:
            answers.append(result.answer())
    return json_response(answers if many else answers[0])


@blueprint.get("/instances/<instance_id>/file")
def instance_file(instance_id: str) -> Response:
    data = daemon().resources.instance_file(instance_id)
    response = Response(data, mimetype="application/dicom")
    set_download_name(response, request.args.get("filename"))
    return response


@blueprint.get("/instances/<instance_id>/tags")
def instance_tags(instance_id: str) -> Response:
    fmt = "simplified" if flag("simplify") else "short" if flag("short") else "full"
    return json_response(daemon().resources.instance_tags(instance_id, fmt))


@blueprint.get("/instances/<instance_id>/simplified-tags")
def instance_simplified_tags(instance_id: str) -> Response:
    return json_response(daemon().resources.instance_tags(instance_id, "simplified"))
