"""``/{level}/{id}/metadata``: list, read, write and delete metadata, with revisions."""

from __future__ import annotations

from flask import Blueprint, Response, request

from ..metadata import value_etag, value_md5
from ..model import Level
from ..revisions import etag, not_modified
from .common import (
    daemon,
    flag,
    if_match,
    if_none_match,
    json_response,
    not_modified_response,
    text_response,
)

blueprint = Blueprint("metadata", __name__)

_BASE = "/<any(patients, studies, series, instances):collection>/<public_id>/metadata"


@blueprint.get(_BASE)
def list_metadata(collection: str, public_id: str) -> Response:
    return json_response(
        daemon().metadata.list(
            Level.from_plural(collection),
            public_id,
            expand=flag("expand"),
            numeric="numeric" in request.args,
        )
    )


@blueprint.get(f"{_BASE}/<name>")
def get_metadata(collection: str, public_id: str, name: str) -> Response:
    found = daemon().metadata.get(Level.from_plural(collection), public_id, name)
    if found is None:
        return Response(status=404)  # Orthanc answers nothing
    value, revision = found
    md5 = value_md5(value)
    if not_modified(if_none_match(), revision, md5):
        return not_modified_response(etag(revision, md5))
    return text_response(value, etag=etag(revision, md5))


@blueprint.put(f"{_BASE}/<name>")
def set_metadata(collection: str, public_id: str, name: str) -> Response:
    value = request.get_data()
    revision, _change = daemon().metadata.set(
        Level.from_plural(collection), public_id, name, value, if_match()
    )
    return text_response(etag=value_etag(revision, value.decode("utf-8")))


@blueprint.delete(f"{_BASE}/<name>")
def delete_metadata(collection: str, public_id: str, name: str) -> Response:
    daemon().metadata.delete(Level.from_plural(collection), public_id, name, if_match())
    return text_response()
