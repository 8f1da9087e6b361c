"""``/system``, ``/statistics`` and ``/plugins``: what a client reads first about a server."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from .. import __version__
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
            "DicomAet": config.raw.get("DicomAet", "ORTHANC"),
            "DicomPort": config.raw.get("DicomPort", 4242),
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
            "Capabilities": {
                "HasExtendedChanges": False,
                "HasExtendedFind": False,
                "HasLabels": False,
            },
        }
    )


@blueprint.get("/statistics")
def statistics() -> Any:
    return json_response(services().resources.statistics())


@blueprint.get("/plugins")
def plugins() -> Any:
    """dicomd loads no Orthanc plugins: Python scripts are scripts (``/scripts``)."""
    return json_response([])


@blueprint.get("/plugins/explorer.js")
def explorer_extensions() -> Response:
    """What Orthanc Explorer loads for plugins' extensions: none here."""
    return Response(
        "// dicomd loads no plugins, hence no extensions to Orthanc Explorer\n",
        content_type="application/javascript",
    )
