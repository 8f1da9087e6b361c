"""``/events``: dicomd's own view of event delivery (Orthanc has no such endpoint)."""

from __future__ import annotations

from flask import Blueprint, Response

from .common import int_arg, json_response, services

blueprint = Blueprint("events", __name__)


@blueprint.get("/events")
def delivery_status() -> Response:
    return json_response(services().events.status())


@blueprint.get("/events/failures")
def failures() -> Response:
    found = services().index.handler_failures(int_arg("since") or 0, int_arg("limit") or 100)
    return json_response(
        [
            {
                "ID": f.id,
                "Handler": f.handler,
                "Seq": f.change.seq,
                "ChangeType": f.change.change_type.name,
                "ResourceType": f.change.resource_type,  # null for a job event
                "ResourceID": f.change.public_id,
                "Attempts": f.attempts,
                "Error": f.error,
                "Date": f.date,
            }
            for f in found
        ]
    )
