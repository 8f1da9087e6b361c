"""``/tools``: the listing, and the tools that read or change run-time settings (encoding,
accepted transfer syntaxes, unknown SOP classes, log levels, metrics), UIDs and times, and
the DICOM conformance statement. ``/tools/find`` and the others that work on stored
resources live with their area."""

from __future__ import annotations

import logging
import re
import time

import pydicom.uid
from flask import Blueprint, Response, current_app, request

from ..domain.conformance import conformance_statement
from ..domain.settings import LOG_CATEGORIES, parse_transfer_syntaxes
from ..errors import ParameterOutOfRange
from .common import boolean_body, json_response, services, text_response

blueprint = Blueprint("tools", __name__)
log = logging.getLogger(__name__)


@blueprint.get("/tools")
def listing() -> Response:
    """The routes under ``/tools``, from the app's own URL map (as Orthanc lists the
    children of a URI)."""
    names: set[str] = set()
    for rule in current_app.url_map.iter_rules():
        if not rule.rule.startswith("/tools/"):
            continue
        name = rule.rule.split("/")[2]
        choices = _ANY.search(name)
        if choices:  # a route per value, as log-level-{generic|http|...}
            for choice in choices.group(1).split(","):
                names.add(name[: choices.start()] + choice.strip() + name[choices.end() :])
        elif "<" not in name:
            names.add(name)
    return json_response(sorted(names))


_ANY = re.compile(r"<any\(([^)]*)\):\w+>")


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


@blueprint.get("/tools/dicom-conformance")
def dicom_conformance() -> Response:
    network = services().network_services()
    return text_response(conformance_statement(network.get("scp", ()), network.get("scu", ())))


@blueprint.post("/tools/shutdown")
def shutdown() -> Response:
    """Stop the daemon, as SIGTERM does (within a second)."""
    log.warning("shutdown requested through the REST API")
    services().settings.request_stop(restart=False)
    return json_response({})


@blueprint.post("/tools/reset")
def reset() -> Response:
    """Stop the daemon and start it again, reading its configuration anew (Orthanc's
    restart); scripts are loaded again too."""
    log.warning("restart requested through the REST API")
    services().settings.request_stop(restart=True)
    return json_response({})


# -- run-time settings -------------------------------------------------------------------
@blueprint.get("/tools/default-encoding")
def get_default_encoding() -> Response:
    return text_response(services().settings.default_encoding())


@blueprint.put("/tools/default-encoding")
def set_default_encoding() -> Response:
    name = request.get_data().decode("utf-8", "replace")
    return text_response(services().settings.set_default_encoding(name))


@blueprint.get("/tools/accepted-transfer-syntaxes")
def get_accepted_transfer_syntaxes() -> Response:
    return json_response(services().settings.accepted_transfer_syntaxes())


@blueprint.put("/tools/accepted-transfer-syntaxes")
def set_accepted_transfer_syntaxes() -> Response:
    uids = parse_transfer_syntaxes(request.get_data())
    return json_response(services().settings.set_accepted_transfer_syntaxes(uids))


@blueprint.get("/tools/unknown-sop-class-accepted")
def get_unknown_sop_class_accepted() -> Response:
    return text_response("1" if services().settings.unknown_sop_class_accepted() else "0")


@blueprint.put("/tools/unknown-sop-class-accepted")
def set_unknown_sop_class_accepted() -> Response:
    services().settings.set_unknown_sop_class_accepted(boolean_body(request.get_data()))
    return text_response()


@blueprint.get("/tools/metrics")
def get_metrics_enabled() -> Response:
    return text_response("1" if services().settings.metrics_enabled() else "0")


@blueprint.put("/tools/metrics")
def set_metrics_enabled() -> Response:
    services().settings.set_metrics_enabled(boolean_body(request.get_data()))
    return text_response()


@blueprint.get("/tools/log-level")
def get_log_level() -> Response:
    return text_response(services().settings.log_level())


@blueprint.put("/tools/log-level")
def set_log_level() -> Response:
    services().settings.set_log_level(request.get_data().decode("utf-8", "replace"))
    return text_response()


_CATEGORIES = ", ".join(LOG_CATEGORIES)


# One route per category in Orthanc; an unknown category is an unknown route.
@blueprint.get(f"/tools/log-level-<any({_CATEGORIES}):category>")
def get_category_log_level(category: str) -> Response:
    return text_response(services().settings.log_level(category))


@blueprint.put(f"/tools/log-level-<any({_CATEGORIES}):category>")
def set_category_log_level(category: str) -> Response:
    level = request.get_data().decode("utf-8", "replace")
    services().settings.set_log_level(level, category)
    return text_response()
