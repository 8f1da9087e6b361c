"""``POST /instances`` (raw DICOM, gzip, ZIP, multipart) and the instance-only endpoints."""

from __future__ import annotations

import gzip
import zlib
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, g, request

from ..domain.model import Origin
from ..errors import BadFileFormat
from ..services import RestAnswer
from .common import JSON, flask_answer, json_text, services, set_download_name
from .direct import DirectRequest, direct
from .inprocess import ORIGIN_KEY
from .server import read_body

if TYPE_CHECKING:
    from ..services import Services

blueprint = Blueprint("instances", __name__)

DICOMWEB_JSON = "application/dicom+json"


def _request_origin() -> Origin:
    inside = request.environ.get(ORIGIN_KEY)
    if inside is not None:
        return Origin(request_origin=inside)  # a script's in-process call ("Lua"...)
    return Origin(
        request_origin="RestApi",
        remote_ip=request.remote_addr or "",
        username=getattr(g, "username", ""),
    )


def _decoded(data: bytes, encoding: str) -> bytes:
    """The body as sent, undone of its ``Content-Encoding``."""
    encoding = encoding.lower()
    if encoding == "gzip":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise BadFileFormat(f"Cannot decompress the gzip body: {exc}") from exc
    if encoding not in ("", "identity"):
        raise BadFileFormat(f"Unsupported Content-Encoding: {encoding}")
    return data


def _store(s: Services, bodies: list[bytes], origin: Origin) -> RestAnswer:
    """Store DICOM files; a ZIP or several parts answer a list, as Orthanc does."""
    if not bodies:
        raise BadFileFormat("Received an empty DICOM file")
    answers: list[dict[str, Any]] = []
    many = len(bodies) != 1
    for body in bodies:
        result = s.ingest.ingest_upload(body, origin)
        if isinstance(result, list):
            many = True
            answers += [r.answer() for r in result]
        else:
            answers.append(result.answer())
    text = json_text(answers if many else answers[0]).encode("utf-8")
    return RestAnswer(200, text, {"Content-Type": JSON})


@direct("instances.upload")
def store_body(s: Services, request: DirectRequest) -> RestAnswer:
    """``POST /instances`` with a raw body (DICOM, gzip or ZIP), without Flask."""
    body = _decoded(request.body, request.headers.get("content-encoding", ""))
    return _store(s, [body], request.origin)


@blueprint.post("/instances")
def upload() -> Response:
    if request.mimetype == "multipart/form-data":
        bodies = [part.read() for part in request.files.values()]
    else:
        data = read_body(request.environ)
        if data is None:
            data = request.get_data(cache=False)
        bodies = [_decoded(data, request.headers.get("Content-Encoding", ""))]
    return flask_answer(_store(services(), bodies, _request_origin()))


@blueprint.get("/instances/<instance_id>/file")
def instance_file(instance_id: str) -> Response:
    """The DICOM file; in DICOMweb JSON when ``Accept`` is exactly ``application/dicom+json``
    (Orthanc's test of the header)."""
    if request.headers.get("Accept") == DICOMWEB_JSON:
        answer = services().resources.content.dicomweb_json(instance_id)
        if answer is not None:
            return Response(json_text(answer), content_type=DICOMWEB_JSON)
    data = services().resources.instance_file(instance_id)
    response = Response(data, mimetype="application/dicom")
    set_download_name(response, request.args.get("filename"))
    return response
