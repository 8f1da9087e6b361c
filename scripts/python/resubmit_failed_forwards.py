"""Forward every instance that arrives to the peer "pacs", and when a forward fails for
good (after the peer's MaxRetries), resubmit it, at most three times; then it is left
failed, as a dead letter (Lua: send-to-peer-with-retry.lua). A job that a user cancelled
is left alone. The count is kept in memory: a restart or a reload starts it again."""

import json

import dicomd.script as dicomd

PEER = "pacs"
MAX_RESUBMITS = 3
CANCELED_JOB = 37  # Orthanc's ErrorCode of a cancelled job
resubmitted: dict[str, int] = {}


@dicomd.on_stored_instance
def forward(event: dicomd.Event) -> None:
    if event.origin().get("RequestOrigin") != "Plugins":
        dicomd.forward(event.resource_id, PEER)


@dicomd.on_job_failure
def resubmit(event: dicomd.Event) -> None:
    answer = dicomd.rest("GET", f"/jobs/{event.resource_id}")
    if not answer.ok:
        return  # deleted since
    job = json.loads(answer.body)
    if job["Content"].get("Peer") != [PEER] or job["ErrorCode"] == CANCELED_JOB:
        return
    count = resubmitted.get(event.resource_id, 0)
    if count >= MAX_RESUBMITS:
        resubmitted.pop(event.resource_id, None)
        dicomd.log().warning(
            "forward job %s left failed after %d resubmits: %s",
            event.resource_id,
            count,
            job["ErrorDetails"],
        )
        return
    resubmitted[event.resource_id] = count + 1
    dicomd.rest("POST", f"/jobs/{event.resource_id}/resubmit")


@dicomd.on_job_success
def forget(event: dicomd.Event) -> None:
    resubmitted.pop(event.resource_id, None)
