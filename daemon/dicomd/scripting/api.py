"""What scripts may do: one API that the Lua engine, the Python engine and their
``orthanc`` compatibility layers all call, so that every action behaves the same whatever
the language. Actions call the core directly; ``rest`` reaches the REST API in process.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import pydicom.uid

from ..domain.model import Level, Resource
from ..errors import BadRequest, UnknownResource
from ..services import RestAnswer

if TYPE_CHECKING:
    from ..services import Services

log = logging.getLogger(__name__)

_UID_LEVELS = ("patient", "study", "series", "instance")


class ScriptApi:
    """The actions available to scripts, bound to one daemon.

    ``origin`` is the request origin of what scripts upload or change through the REST API
    ("Lua" or "Plugins", as in Orthanc)."""

    def __init__(self, services: Services, origin: str) -> None:
        self._services = services
        self.origin = origin

    def _act(self, kind: str, target: str, **details: Any) -> bool:
        """Record an action when the daemon keeps a log of them; whether to carry it out."""
        actions = self._services.action_log
        if actions is None:
            return True
        return actions.record(kind, target, self.origin, details)

    # -- lookups ---------------------------------------------------------------------------
    def resource(self, public_id: str) -> Resource:
        """The resource with this Orthanc ID, at whatever level; 404 if unknown."""
        found = self._services.index.lookup(public_id)
        if found is None:
            raise UnknownResource(f"Unknown resource: {public_id}", empty_body=False)
        return found

    def describe(self, public_id: str) -> dict[str, Any]:
        """Orthanc's JSON of the resource (``GET /{level}/{id}``)."""
        return self._services.resources.describe(self.resource(public_id))

    def configuration(self) -> dict[str, Any]:
        """The configuration as read from the file (``GetOrthancConfiguration``)."""
        return dict(self._services.config.raw)

    # -- metadata and attachments ----------------------------------------------------------
    def get_metadata(self, public_id: str, name: str) -> str | None:
        resource = self.resource(public_id)
        found = self._services.metadata.get(resource.level, public_id, name)
        return found[0] if found else None

    # Scripts write unconditionally: CheckRevisions protects HTTP clients from each other.
    def set_metadata(self, public_id: str, name: str, value: str) -> None:
        resource = self.resource(public_id)
        if not self._act("set-metadata", public_id, name=name, value=value):
            return
        self._services.metadata.set(
            resource.level, public_id, name, value, None, check_revisions=False
        )

    def delete_metadata(self, public_id: str, name: str) -> bool:
        """False if the resource did not have it."""
        resource = self.resource(public_id)
        if not self._act("delete-metadata", public_id, name=name):
            return self.get_metadata(public_id, name) is not None
        try:
            self._services.metadata.delete(
                resource.level, public_id, name, None, check_revisions=False
            )
        except UnknownResource:
            return False
        return True

    def add_attachment(self, public_id: str, name: str, data: bytes) -> None:
        """Attach (or replace) a user attachment."""
        resource = self.resource(public_id)
        if not self._act("add-attachment", public_id, name=name, size=len(data)):
            return
        self._services.attachments.put(
            resource.level, public_id, name, [data], len(data), None, check_revisions=False
        )

    # -- resources -------------------------------------------------------------------------
    def set_protected(self, patient_id: str, protected: bool) -> None:
        if self._act("protect" if protected else "unprotect", patient_id):
            self._services.resources.set_protected(patient_id, protected)

    def delete(self, public_id: str) -> dict[str, Any]:
        resource = self.resource(public_id)
        if not self._act("delete", public_id, level=resource.level.title):
            return {"RemainingAncestor": None}
        return self._services.resources.delete(resource.level, public_id)

    def set_stable_status(self, public_id: str, stable: bool) -> bool:
        """Make a series, study or patient stable at once (its Stable* event fires) or
        unstable again for ``StableAge`` seconds; whether its status changed."""
        resource = self.resource(public_id)
        if resource.level is Level.INSTANCE:
            raise BadRequest("Only series, studies and patients have a stable status")
        if not self._act("set-stable", public_id, stable=stable):
            return True
        deadline = time.time() + self._services.config.stable_age
        return self._services.index.set_stable(resource, stable, deadline)

    def forward(self, public_id: str, peer: str) -> str:
        """Queue the sending of a resource (any level) to an Orthanc peer, through a
        durable job with retries; returns the job's ID."""
        self._services.peers.get(peer)  # an unknown peer is an error even in a dry run
        if not self._act("forward", public_id, peer=peer):
            return "dry-run"
        return self._services.jobs.submit_store(peer, [public_id], description=self.origin).id

    # -- REST and tools --------------------------------------------------------------------
    def rest(
        self,
        method: str,
        uri: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        builtin: bool = False,
    ) -> RestAnswer:
        """Call the daemon's REST API in process (no socket, no authentication);
        ``builtin``: without the routes that scripts added. Calls that may change something
        are actions; in a dry run they answer 200 with ``{}``."""
        if method.upper() != "GET" and not self._act(
            "rest", uri, method=method.upper(), size=len(body)
        ):
            return RestAnswer(200, b"{}", {"Content-Type": "application/json"})
        return self._services.rest_client().call(method, uri, body, headers, self.origin, builtin)

    @staticmethod
    def generate_uid(level: str = "instance") -> str:
        if level.lower() not in _UID_LEVELS:
            raise ValueError(f"level must be one of {', '.join(_UID_LEVELS)}")
        return str(pydicom.uid.generate_uid())

    @staticmethod
    def level_of(resource: Resource) -> Level:
        return resource.level
