"""An admin endpoint: ``GET /dicomd-admin/summary`` answers counts and the event backlog,
``POST /dicomd-admin/stable/<id>`` makes a series or study stable at once. They share the
daemon's authentication and HTTP filters."""

import json
from typing import Any

import dicomd.script as dicomd


@dicomd.route("/dicomd-admin/summary")
def summary(request: dicomd.Request) -> dict[str, Any]:
    statistics = json.loads(dicomd.rest("GET", "/statistics").body)
    events = json.loads(dicomd.rest("GET", "/events").body)
    return {
        "Patients": statistics["CountPatients"],
        "Instances": statistics["CountInstances"],
        "Backlog": sum(h["Backlog"] for h in events["Handlers"]),
        "AskedBy": request.username,
    }


@dicomd.route("/dicomd-admin/stable/([0-9a-f-]+)", methods=["POST"])
def make_stable(request: dicomd.Request) -> dicomd.Response:
    changed = dicomd.set_stable(request.groups[0])
    return dicomd.Response(200 if changed else 409, b"", "text/plain")
