"""``/jobs``: Orthanc's jobs API over dicomd's durable jobs."""

from __future__ import annotations

from flask import Blueprint, Response

from .common import flag, json_response, services, text_response

blueprint = Blueprint("jobs", __name__)


@blueprint.get("/jobs")
def list_jobs() -> Response:
    engine = services().jobs
    jobs = engine.index.list_jobs()
    if flag("expand"):
        return json_response([engine.describe(job) for job in jobs])
    return json_response([job.id for job in jobs])


@blueprint.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    engine = services().jobs
    return json_response(engine.describe(engine.get(job_id)))


@blueprint.post("/jobs/<job_id>/<any(pause, resume, cancel, resubmit):action>")
def control_job(job_id: str, action: str) -> Response:
    getattr(services().jobs, action)(job_id)
    return json_response({})


@blueprint.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> Response:
    services().jobs.delete(job_id)
    return text_response()
