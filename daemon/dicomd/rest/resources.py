"""The four resource collections, with Orthanc's listing, child, parent and delete routes."""

from __future__ import annotations

from flask import Blueprint, Response, request

from ..domain.model import Level
from ..errors import UnknownResource
from .common import boolean_body, flag, int_arg, json_response, services, text_response

blueprint = Blueprint("resources", __name__)

_LEVELS = "<any(patients, studies, series, instances):collection>"


def _level(collection: str) -> Level:
    return Level.from_plural(collection)


@blueprint.get(f"/{_LEVELS}")
def list_resources(collection: str) -> Response:
    return json_response(
        services().resources.list_resources(
            _level(collection),
            expand=flag("expand"),
            since=int_arg("since"),
            limit=int_arg("limit"),
        )
    )


@blueprint.get(f"/{_LEVELS}/<public_id>")
def get_resource(collection: str, public_id: str) -> Response:
    service = services().resources
    return json_response(service.describe(service.get(_level(collection), public_id)))


@blueprint.delete(f"/{_LEVELS}/<public_id>")
def delete_resource(collection: str, public_id: str) -> Response:
    return json_response(services().resources.delete(_level(collection), public_id))


@blueprint.get(f"/{_LEVELS}/<public_id>/statistics")
def resource_statistics(collection: str, public_id: str) -> Response:
    return json_response(services().resources.resource_statistics(_level(collection), public_id))


@blueprint.get(f"/{_LEVELS}/<public_id>/<any(patient, study, series):relative>")
def parent_resource(collection: str, public_id: str, relative: str) -> Response:
    """``/instances/{id}/patient``; at a lower level, ``/patients/{id}/series`` lists children."""
    level = _level(collection)
    target = {"patient": Level.PATIENT, "study": Level.STUDY, "series": Level.SERIES}[relative]
    service = services().resources
    if target < level:
        return json_response(service.parent(level, public_id, target))
    if target > level:
        return json_response(service.children(level, public_id, target, expand=True))
    raise UnknownResource(f"/{collection}/{public_id}/{relative}")


@blueprint.get(f"/{_LEVELS}/<public_id>/<any(studies, instances):relative>")
def child_resources(collection: str, public_id: str, relative: str) -> Response:
    """``/patients/{id}/studies``, ``/studies/{id}/instances``... (expanded, as Orthanc)."""
    level = _level(collection)
    target = Level.from_plural(relative)
    if target <= level:
        raise UnknownResource(f"/{collection}/{public_id}/{relative}")
    return json_response(services().resources.children(level, public_id, target, expand=True))


@blueprint.get("/patients/<public_id>/protected")
def get_protected(public_id: str) -> Response:
    return text_response("1" if services().resources.is_protected(public_id) else "0")


@blueprint.put("/patients/<public_id>/protected")
def set_protected(public_id: str) -> Response:
    services().resources.set_protected(public_id, boolean_body(request.get_data()))
    return text_response()
