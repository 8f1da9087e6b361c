"""``/{level}/{id}/metadata``: list, read, write and delete metadata, with revisions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, request

from ..domain.metadata import value_etag, value_md5
from ..domain.model import Level
from ..domain.revisions import etag, not_modified
from ..services import RestAnswer
from .common import TEXT, flag, flask_answer, json_response, lower_headers, services
from .direct import DirectRequest, direct

if TYPE_CHECKING:
    from ..services import Services

blueprint = Blueprint("metadata", __name__)

_BASE = "/<any(patients, studies, series, instances):collection>/<public_id>/metadata"


@blueprint.get(_BASE)
def list_metadata(collection: str, public_id: str) -> Response:
    return json_response(
        services().metadata.list(
            Level.from_plural(collection),
            public_id,
            expand=flag("expand"),
            numeric="numeric" in request.args,
        )
    )


# One metadata value: each route is a function of the request's parts, answering a
# RestAnswer, so that scripts' in-process calls reach it without the Flask request machinery
# (see ``direct.py``); the Flask views below only adapt it.


@direct("metadata.get_metadata")
def read_value(s: Services, request: DirectRequest) -> RestAnswer:
    args, headers = request.args, request.headers
    found = s.metadata.get(Level.from_plural(args["collection"]), args["public_id"], args["name"])
    if found is None:
        return RestAnswer(404, b"")  # Orthanc answers nothing
    value, revision = found
    md5 = value_md5(value)
    tag = etag(revision, md5)
    if not_modified(headers.get("if-none-match"), revision, md5):
        return RestAnswer(304, b"", {"ETag": tag})
    return RestAnswer(200, value.encode("utf-8"), {"Content-Type": TEXT, "ETag": tag})


@direct("metadata.set_metadata")
def write_value(s: Services, request: DirectRequest) -> RestAnswer:
    args, body, headers = request.args, request.body, request.headers
    level = Level.from_plural(args["collection"])
    revision, _change = s.metadata.set(
        level, args["public_id"], args["name"], body, headers.get("if-match")
    )
    tag = value_etag(revision, body.decode("utf-8"))
    return RestAnswer(200, b"", {"Content-Type": TEXT, "ETag": tag})


@direct("metadata.delete_metadata")
def delete_value(s: Services, request: DirectRequest) -> RestAnswer:
    args, headers = request.args, request.headers
    level = Level.from_plural(args["collection"])
    s.metadata.delete(level, args["public_id"], args["name"], headers.get("if-match"))
    return RestAnswer(200, b"", {"Content-Type": TEXT})


@blueprint.get(f"{_BASE}/<name>")
def get_metadata(**args: str) -> Response:
    return flask_answer(read_value(services(), DirectRequest(args, headers=lower_headers())))


@blueprint.put(f"{_BASE}/<name>")
def set_metadata(**args: str) -> Response:
    body = request.get_data()
    return flask_answer(write_value(services(), DirectRequest(args, body, lower_headers())))


@blueprint.delete(f"{_BASE}/<name>")
def delete_metadata(**args: str) -> Response:
    return flask_answer(delete_value(services(), DirectRequest(args, headers=lower_headers())))
