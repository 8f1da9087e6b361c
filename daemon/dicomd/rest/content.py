"""What the stored DICOM files say: ``/instances/{id}/tags``, ``/simplified-tags``,
``/header``, ``/content/...``, ``/frames``; ``/{level}/{id}/shared-tags``, ``/module``,
``/module-patient``, ``/instances-tags``; ``/reconstruct`` and ``/tools/invalidate-tags``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, request

from ..domain.model import Level
from .common import json_response, services, text_response

if TYPE_CHECKING:
    from ..domain.content import ContentService

blueprint = Blueprint("content", __name__)

_ABOVE_INSTANCES = "<any(patients, studies, series):collection>"
_LEVELS = "<any(patients, studies, series, instances):collection>"
# Orthanc's sub-routes of one frame (images and raw data, served by the imaging routes).
FRAME_ROUTES = (
    "image-int16",
    "image-uint16",
    "image-uint8",
    "matlab",
    "numpy",
    "preview",
    "raw",
    "raw.gz",
    "rendered",
)


def _format(default: str = "full") -> str:
    """Orthanc's choice of DICOM-as-JSON format: the presence of ``?simplify``, else of
    ``?short``, else of ``?full`` (whatever their values)."""
    for arg, fmt in (("simplify", "simplified"), ("short", "short"), ("full", "full")):
        if arg in request.args:
            return fmt
    return default


def _ignore_length() -> frozenset[int]:
    """``?ignore-length=``: tags (comma-separated, repeatable) never "TooLong"."""
    texts = request.args.getlist("ignore-length")
    return _content().parse_tags(texts) if texts else frozenset()


def _content() -> ContentService:
    return services().resources.content


@blueprint.get("/instances/<instance_id>/tags")
def instance_tags(instance_id: str) -> Response:
    return json_response(_content().instance_tags(instance_id, _format(), _ignore_length()))


@blueprint.get("/instances/<instance_id>/simplified-tags")
def instance_simplified_tags(instance_id: str) -> Response:
    return json_response(_content().instance_tags(instance_id, "simplified", _ignore_length()))


@blueprint.get("/instances/<instance_id>/header")
def instance_header(instance_id: str) -> Response:
    return json_response(_content().header(instance_id, _format()))


@blueprint.get("/instances/<instance_id>/content")
@blueprint.get("/instances/<instance_id>/content/<path:path>")
def instance_content(instance_id: str, path: str = "") -> Response:
    answer = _content().content(instance_id, [p for p in path.split("/") if p])
    if isinstance(answer, list):
        return json_response(answer)
    return Response(answer, content_type="application/octet-stream")


@blueprint.get("/instances/<instance_id>/frames")
def instance_frames(instance_id: str) -> Response:
    return json_response(_content().frames(instance_id))


@blueprint.get("/instances/<instance_id>/frames/<frame>")
def instance_frame(instance_id: str, frame: str) -> Response:
    """The routes of one frame, as Orthanc lists a URI's children (whatever the frame)."""
    del instance_id, frame
    return json_response(list(FRAME_ROUTES))


@blueprint.get(f"/{_ABOVE_INSTANCES}/<public_id>/shared-tags")
def shared_tags(collection: str, public_id: str) -> Response:
    level = Level.from_plural(collection)
    return json_response(_content().shared_tags(level, public_id, _format()))


@blueprint.get(f"/{_ABOVE_INSTANCES}/<public_id>/instances-tags")
def instances_tags(collection: str, public_id: str) -> Response:
    level = Level.from_plural(collection)
    return json_response(_content().instances_tags(level, public_id, _format(), _ignore_length()))


@blueprint.get(f"/{_LEVELS}/<public_id>/module")
def module(collection: str, public_id: str) -> Response:
    level = Level.from_plural(collection)
    return json_response(
        _content().module(level, public_id, level.title, _format(), _ignore_length())
    )


@blueprint.get("/studies/<public_id>/module-patient")
def module_patient(public_id: str) -> Response:
    return json_response(
        _content().module(Level.STUDY, public_id, "Patient", _format(), _ignore_length())
    )


@blueprint.post(f"/{_LEVELS}/<public_id>/reconstruct")
def reconstruct(collection: str, public_id: str) -> Response:
    level = Level.from_plural(collection)
    services().resources.get(level, public_id)
    _content().reconstruct(level, public_id)
    return text_response()


@blueprint.post("/tools/reconstruct")
def reconstruct_all() -> Response:
    _content().reconstruct(None)
    return text_response()


@blueprint.post("/tools/invalidate-tags")
def invalidate_tags() -> Response:
    """dicomd keeps no DICOM-as-JSON summaries (tags are read from the files each time, so a
    new ``Dictionary`` shows at once): there is nothing to invalidate."""
    return text_response()
