"""Archives and media: ``/{patients|studies|series}/{id}/archive`` and ``/media``,
``/tools/create-archive``, ``/tools/create-media`` and ``/tools/create-media-extended``,
as ZIP files streamed while they are made."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, request

from ..domain.archive import ArchivePlan
from ..errors import BadFileFormat
from .common import flag, services, set_download_name

blueprint = Blueprint("archives", __name__)

_ONE = "/<any(patients, studies, series):collection>/<public_id>"
_KINDS = "<any(archive, media):kind>"
_TOOLS = ("create-archive", "create-media", "create-media-extended")


# -- the options of a POST body, read as Orthanc reads them ----------------------------------
def _field(body: Any, key: str, kind: type, what: str) -> Any:
    if not isinstance(body, dict) or key not in body:
        return None
    value = body[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadFileFormat(f"{what} value expected in field: {key}")
    return value


def _options(body: Any, default_extended: bool) -> dict[str, Any]:
    """``Synchronous`` (or ``Asynchronous``), ``Priority``, ``Extended``, ``Transcode`` and
    dicomd's ``Filename``; a body that is not an object takes the defaults."""
    synchronous = _field(body, "Synchronous", bool, "Boolean")
    if synchronous is None:
        asynchronous = _field(body, "Asynchronous", bool, "Boolean")
        synchronous = True if asynchronous is None else not asynchronous
    extended = _field(body, "Extended", bool, "Boolean")
    return {
        "synchronous": synchronous,
        "priority": _field(body, "Priority", int, "Integer") or 0,
        "extended": default_extended if extended is None else extended,
        "transcode": _field(body, "Transcode", str, "String"),
        "filename": _field(body, "Filename", str, "String"),
    }


def _json_body(details: str = "") -> Any:
    try:
        return json.loads(request.get_data())
    except ValueError:
        raise BadFileFormat(details) from None


def _resources(body: Any) -> list[str]:
    """The resources of a ``/tools/create-*`` body: a list of IDs, or ``Resources``."""
    if isinstance(body, dict):
        if "Resources" not in body:
            raise BadFileFormat("Missing field Resources in the JSON body")
        body = body["Resources"]
    elif not isinstance(body, list):
        raise BadFileFormat()
    if not isinstance(body, list) or not all(isinstance(i, str) for i in body):
        raise BadFileFormat("Expected a list of strings (Orthanc identifiers)")
    return body


# -- answers ---------------------------------------------------------------------------------
def _answer(plan: ArchivePlan, filename: str, asked: str | None) -> Response:
    """The ZIP, streamed: its length is not known before its end."""
    response = Response(
        services().archives.stream(plan), mimetype="application/zip", direct_passthrough=True
    )
    set_download_name(response, asked or filename)
    return response


def _make(resources: list[str], media: bool, options: dict[str, Any], filename: str) -> Response:
    plan = services().archives.plan(
        resources, media=media, extended=options["extended"], transcode=options["transcode"]
    )
    if not options["synchronous"]:
        from ..errors import NotImplementedFeature

        raise NotImplementedFeature("Asynchronous archives are not implemented yet")
    return _answer(plan, filename, options["filename"])


@blueprint.get(f"{_ONE}/{_KINDS}")
def get_archive(collection: str, public_id: str, kind: str) -> Response:
    """``?transcode=``, ``?extended`` (media), and dicomd's ``?filename=``."""
    options = {
        "synchronous": True,
        "extended": kind == "media" and "extended" in request.args,
        "transcode": request.args.get("transcode"),
        "filename": request.args.get("filename"),
    }
    return _make([public_id], kind == "media", options, f"{public_id}.zip")


@blueprint.post(f"{_ONE}/{_KINDS}")
def post_archive(collection: str, public_id: str, kind: str) -> Response:
    options = _options(_json_body(), default_extended=False)
    return _make([public_id], kind == "media", options, f"{public_id}.zip")


def create(tool: str) -> Response:
    """``POST /tools/create-*``: a list of IDs, or an object with ``Resources``."""
    body = _json_body("Expected a list of resources to archive in the body")
    options = _options(body, default_extended=tool == "create-media-extended")
    return _make(_resources(body), tool != "create-archive", options, "Archive.zip")


def create_from_query(tool: str) -> Response:
    """Newer Orthanc's GET form: ``?resources=id1,id2``, ``?transcode=``, ``?filename=``."""
    listed = request.args.get("resources", "")
    options = {
        "synchronous": True,
        "extended": tool == "create-media-extended" or flag("extended"),
        "transcode": request.args.get("transcode"),
        "filename": request.args.get("filename"),
    }
    resources = [r for r in listed.split(",") if r]
    return _make(resources, tool != "create-archive", options, "Archive.zip")


for _tool in _TOOLS:
    for _method, _view in (("POST", create), ("GET", create_from_query)):
        blueprint.add_url_rule(
            f"/tools/{_tool}",
            endpoint=f"{_view.__name__}_{_tool}",
            view_func=_view,
            defaults={"tool": _tool},
            methods=[_method],
        )
