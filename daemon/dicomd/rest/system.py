"""``/system``, ``/statistics`` and the ``/tools`` endpoints clients call routinely."""

from __future__ import annotations

import time
from typing import Any

import pydicom.uid
from flask import Blueprint, Response, request

from .. import __version__
from ..errors import ParameterOutOfRange
from .common import json_response, services

blueprint = Blueprint("system", __name__)

# The Orthanc release whose REST behaviour dicomd follows; clients compare it.
ORTHANC_VERSION = "1.10.1"
ORTHANC_API_VERSION = 16
DATABASE_VERSION = 6


@blueprint.get("/system")
def system() -> Any:
    config = services().config
    return json_response(
        {
            "Name": config.name,
            "Version": ORTHANC_VERSION,
            "ApiVersion": ORTHANC_API_VERSION,
            "DatabaseVersion": DATABASE_VERSION,
            "DatabaseBackendPlugin": None,
            "StorageAreaPlugin": None,
            "DicomAet": "DICOMD",
            "DicomPort": 4242,
            "HttpPort": services().http_port(),
            "IsHttpServerSecure": config.authentication_enabled or not config.remote_access_allowed,
            "PluginsEnabled": False,
            "CheckRevisions": config.check_revisions,
            "StorageCompression": config.storage_compression,
            "OverwriteInstances": config.overwrite_instances,
            "MaximumStorageSize": config.maximum_storage_size,
            "MaximumPatientCount": config.maximum_patient_count,
            "MaximumStorageMode": config.maximum_storage_mode,
            "UserMetadata": dict(config.user_metadata),
            "DicomdVersion": __version__,
        }
    )


@blueprint.get("/statistics")
def statistics() -> Any:
    return json_response(services().resources.statistics())


_UID_LEVELS = ("patient", "study", "series", "instance")


@blueprint.get("/tools/generate-uid")
def generate_uid() -> Response:
    level = request.args.get("level", "")
    if level not in _UID_LEVELS:
        raise ParameterOutOfRange(f'"level" must be one of {", ".join(_UID_LEVELS)}')
    return Response(pydicom.uid.generate_uid(), mimetype="text/plain")


@blueprint.get("/tools/now")
def now() -> Response:
    return Response(time.strftime("%Y%m%dT%H%M%S", time.gmtime()), mimetype="text/plain")


@blueprint.get("/tools/now-local")
def now_local() -> Response:
    return Response(time.strftime("%Y%m%dT%H%M%S", time.localtime()), mimetype="text/plain")
