"""``/changes`` and ``/exports``: Orthanc's change log and exported-resources log, paged by
sequence number."""

from __future__ import annotations

from flask import Blueprint, Response, request

from .common import int_arg, json_response, services, text_response

blueprint = Blueprint("changes", __name__)


@blueprint.get("/changes")
def get_changes() -> Response:
    log = services().changes
    if "last" in request.args:
        return json_response(log.last())
    return json_response(log.page(int_arg("since") or 0, int_arg("limit") or 0))


@blueprint.delete("/changes")
def clear_changes() -> Response:
    services().changes.clear()
    return text_response()


@blueprint.get("/exports")
def get_exports() -> Response:
    log = services().exports
    if "last" in request.args:
        return json_response(log.last())
    return json_response(log.page(int_arg("since") or 0, int_arg("limit") or 0))


@blueprint.delete("/exports")
def clear_exports() -> Response:
    services().exports.clear()
    return text_response()
