"""``/changes``: Orthanc's change log, paged by sequence number."""

from __future__ import annotations

from flask import Blueprint, Response, request

from .common import daemon, int_arg, json_response, text_response

blueprint = Blueprint("changes", __name__)


@blueprint.get("/changes")
def get_changes() -> Response:
    log = daemon().changes
    if "last" in request.args:
        return json_response(log.last())
    return json_response(log.page(int_arg("since") or 0, int_arg("limit") or 0))


@blueprint.delete("/changes")
def clear_changes() -> Response:
    daemon().changes.clear()
    return text_response()
