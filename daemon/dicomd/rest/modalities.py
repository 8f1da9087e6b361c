"""``GET /modalities``: the DICOM modalities of the configuration (``DicomModalities``), as
Orthanc lists them. Only the listing for now: dicomd does not speak the DICOM network yet, so
there is nothing to echo, store to or query (see docs/rest-api.md)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from .common import flag, json_response, services

blueprint = Blueprint("modalities", __name__)


def _configured() -> dict[str, Any]:
    modalities = services().config.raw.get("DicomModalities", {})
    return modalities if isinstance(modalities, dict) else {}


def _public(spec: Any) -> dict[str, Any]:
    """Orthanc's expanded form of one entry: ``[AET, host, port(, manufacturer)]`` or an
    object."""
    if isinstance(spec, list):
        keys = ("AET", "Host", "Port", "Manufacturer")
        spec = dict(zip(keys, spec, strict=False))
    if not isinstance(spec, dict):
        return {}
    return {"Manufacturer": "Generic", **spec}


@blueprint.get("/modalities")
def listing() -> Response:
    modalities = _configured()
    if flag("expand"):
        return json_response({name: _public(spec) for name, spec in modalities.items()})
    return json_response(sorted(modalities))
