"""dicomd's own Python API for scripts listed in ``PythonScripts``::

    import dicomd.script as dicomd

    @dicomd.on_stable_study
    def route(event: dicomd.Event) -> None:
        if event.tags().get("Modality") == "CT":
            dicomd.forward(event.resource_id, "pacs")

Decorators register callbacks while the script loads; the other functions act on the
daemon that runs the script, calling its core directly. They work while the script loads
and inside its callbacks; a thread the script starts itself must run its target inside
``contextvars.copy_context().run`` to use them. See docs/scripting-python.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from .domain.model import ChangeType, Level
from .events.handlers import Event, HttpFilter, InstanceFilter, RecyclingFilter
from .scripting.context import CURRENT, EventCallback, LoadedScript
from .scripting.routes import ScriptRequest, ScriptResponse
from .services import RestAnswer

__all__ = [
    "ChangeType", "Event", "Level", "Request", "Response", "RestAnswer",
    "on_stored_instance", "on_stable_series", "on_stable_study", "on_stable_patient",
    "on_deleted", "on_updated", "on_recycled_patient", "on_job_submitted", "on_job_success",
    "on_job_failure", "on_change", "on_heartbeat",
    "on_started", "on_stopping", "recycling_filter", "incoming_instance_filter", "http_filter",
    "route", "get_metadata", "set_metadata", "delete_metadata", "add_attachment", "protect",
    "unprotect", "forward", "delete", "set_stable", "describe", "lookup", "find",
    "rest", "configuration", "generate_uid", "log",
]  # fmt: skip

Request = ScriptRequest
Response = ScriptResponse
_LEVELS = {level.title.lower(): level for level in Level}


def _script() -> LoadedScript:
    script = CURRENT.get(None)
    if script is None:
        raise RuntimeError(
            "dicomd.script works inside a script that dicomd loads, while it loads or in "
            "its callbacks (run your own threads through contextvars.copy_context().run)"
        )
    return script


def _on(*types: ChangeType, level: str | None = None) -> Callable[[EventCallback], EventCallback]:
    wanted = _LEVELS[level.lower()] if level else None

    def register(function: EventCallback) -> EventCallback:
        callback = function
        if wanted is not None:

            def callback(event: Event) -> None:
                if event.level is wanted:
                    function(event)

            callback.__name__ = function.__name__
        _script().registered.events.append((frozenset(types), callback))
        return function

    return register


# -- notifications (in the script's handler thread, at least once, in order) ---------------
def on_stored_instance(function: EventCallback) -> EventCallback:
    """A new instance was stored (Lua ``OnStoredInstance``)."""
    return _on(ChangeType.NewInstance)(function)


def on_stable_series(function: EventCallback) -> EventCallback:
    """No new instance arrived in the series for ``StableAge`` seconds."""
    return _on(ChangeType.StableSeries)(function)


def on_stable_study(function: EventCallback) -> EventCallback:
    return _on(ChangeType.StableStudy)(function)


def on_stable_patient(function: EventCallback) -> EventCallback:
    return _on(ChangeType.StablePatient)(function)


def on_deleted(level: str | None = None) -> Callable[[EventCallback], EventCallback]:
    """A resource was deleted (of ``level``: "patient", "study", "series", "instance";
    every level when None). ``event.resource_id`` is all that is left of it."""
    return _on(ChangeType.Deleted, level=level)


def on_updated(level: str | None = None) -> Callable[[EventCallback], EventCallback]:
    """A resource's metadata or attachments changed (Lua ``OnUpdated*``)."""
    return _on(ChangeType.UpdatedMetadata, ChangeType.UpdatedAttachment, level=level)


def on_recycled_patient(function: EventCallback) -> EventCallback:
    """A patient was recycled; ``event.tags()`` and ``event.metadata()`` are the ones it had."""
    return _on(ChangeType.RecycledPatient)(function)


def on_job_submitted(function: EventCallback) -> EventCallback:
    """A job was created (Lua ``OnJobSubmitted``); ``event.resource_id`` is its ID and
    ``event.level`` is None."""
    return _on(ChangeType.JobSubmitted)(function)


def on_job_success(function: EventCallback) -> EventCallback:
    """A job succeeded (Lua ``OnJobSuccess``); ``event.resource_id`` is its ID."""
    return _on(ChangeType.JobSuccess)(function)


def on_job_failure(function: EventCallback) -> EventCallback:
    """A job failed for good, after its retries, or was cancelled (Lua ``OnJobFailure``);
    ``event.resource_id`` is its ID, ``POST /jobs/{id}/resubmit`` runs it again."""
    return _on(ChangeType.JobFailure)(function)


def on_change(function: EventCallback) -> EventCallback:
    """Every event of the log (``event.type`` tells which; ``event.level`` is None for a
    job's)."""
    return _on(*ChangeType)(function)


def on_heartbeat(seconds: float) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Call the function every ``seconds`` (Lua ``OnHeartBeat``)."""

    def register(function: Callable[[], None]) -> Callable[[], None]:
        _script().registered.heartbeats.append((seconds, function))
        return function

    return register


def on_started(function: Callable[[], None]) -> Callable[[], None]:
    """Called once the script is loaded and the daemon runs (Lua ``Initialize``)."""
    _script().registered.started.append(function)
    return function


def on_stopping(function: Callable[[], None]) -> Callable[[], None]:
    """Called when the daemon stops or the script is reloaded (Lua ``Finalize``)."""
    _script().registered.stopping.append(function)
    return function


# -- filters (synchronous, in the requesting thread; a raising filter allows) --------------
def recycling_filter(function: RecyclingFilter) -> RecyclingFilter:
    """``f(patient_id, tags, metadata) -> bool``: False keeps the patient from recycling."""
    _script().registered.recycling_filters.append(function)
    return function


def incoming_instance_filter(function: InstanceFilter) -> InstanceFilter:
    """``f(tags, origin, info) -> bool``: False discards the instance (FilteredOut)."""
    _script().registered.instance_filters.append(function)
    return function


def http_filter(function: HttpFilter) -> HttpFilter:
    """``f(method, uri, ip, username, headers) -> bool``: False answers 403."""
    _script().registered.http_filters.append(function)
    return function


RouteHandler = Callable[[ScriptRequest], Any]


def route(regex: str, methods: Iterable[str] = ("GET",)) -> Callable[[RouteHandler], RouteHandler]:
    """Serve ``regex`` (matching the whole path) under the daemon's auth. The function gets
    a :class:`Request` and returns a :class:`Response`, a dict or list (JSON), str (text),
    bytes or None (empty 200)."""

    def register(function: RouteHandler) -> RouteHandler:
        def serve(request: ScriptRequest) -> ScriptResponse:
            return to_response(function(request))

        _script().registered.routes.append((regex, frozenset(methods), serve))
        return function

    return register


def to_response(value: Any) -> ScriptResponse:
    import json

    if isinstance(value, ScriptResponse):
        return value
    if value is None:
        return ScriptResponse()
    if isinstance(value, dict | list):
        return ScriptResponse(body=json.dumps(value).encode(), content_type="application/json")
    if isinstance(value, str):
        return ScriptResponse(body=value.encode())
    if isinstance(value, bytes):
        return ScriptResponse(body=value, content_type="application/octet-stream")
    raise TypeError(f"a route returned {type(value).__name__}; expected Response, dict, str...")


# -- actions (the core, directly) ----------------------------------------------------------
def get_metadata(resource_id: str, name: str) -> str | None:
    return _script().api.get_metadata(resource_id, name)


def set_metadata(resource_id: str, name: str, value: str) -> None:
    _script().api.set_metadata(resource_id, name, value)


def delete_metadata(resource_id: str, name: str) -> bool:
    """False if the resource did not have it."""
    return _script().api.delete_metadata(resource_id, name)


def add_attachment(resource_id: str, name: str, data: bytes) -> None:
    _script().api.add_attachment(resource_id, name, data)


def protect(patient_id: str) -> None:
    """Keep the patient from recycling."""
    _script().api.set_protected(patient_id, True)


def unprotect(patient_id: str) -> None:
    _script().api.set_protected(patient_id, False)


def forward(resource_id: str, peer: str) -> str:
    """Queue the sending of a resource (any level) to an Orthanc peer, as a durable job
    retried until the peer takes it; returns the job's ID."""
    return _script().api.forward(resource_id, peer)


def delete(resource_id: str) -> dict[str, Any]:
    return _script().api.delete(resource_id)


def set_stable(resource_id: str, stable: bool = True) -> bool:
    """Make a series, study or patient stable now (or unstable again); whether it changed."""
    return _script().api.set_stable_status(resource_id, stable)


def describe(resource_id: str) -> dict[str, Any]:
    """Orthanc's JSON of the resource, as ``GET /{level}/{id}`` answers."""
    return _script().api.describe(resource_id)


def lookup(resource_id: str) -> dict[str, Any] | None:
    """Like :func:`describe`, but None for an unknown resource."""
    from .errors import UnknownResource

    try:
        return describe(resource_id)
    except UnknownResource:
        return None


def find(level: str, uid: str) -> str | None:
    """The Orthanc ID of the resource whose DICOM identifier (PatientID,
    StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID) is ``uid``; None if not stored."""
    from .scripting.lookups import find_by_uid

    return find_by_uid(_script().services, _LEVELS[level.lower()], uid)


def rest(method: str, uri: str, body: bytes | str = b"", builtin: bool = False) -> RestAnswer:
    """Call the REST API in process (no socket: safe from any callback)."""
    data = body.encode() if isinstance(body, str) else body
    return _script().api.rest(method, uri, data, builtin=builtin)


def configuration() -> dict[str, Any]:
    return _script().api.configuration()


def generate_uid(level: str = "instance") -> str:
    return _script().api.generate_uid(level)


def log() -> logging.Logger:
    """The script's logger (``dicomd.script.<name>``)."""
    return _script().log
