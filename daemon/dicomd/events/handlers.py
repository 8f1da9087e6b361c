"""Events, handlers and filters: the one interface that Lua scripts, Python scripts and
built-in features (forwarding...) plug into.

Two kinds, as in Orthanc and pynetdicom:

- **Notifications** (stored instance, stable resource, deleted, recycled, updated metadata or
  attachment, a job submitted, succeeded or failed) are entries of the durable change log.
  Each registered :class:`Handler` gets them in order, at least once, in its own thread,
  after the transaction that logged them committed (see ``delivery.py``).
- **Filters** decide synchronously, in the caller's thread: accept an incoming instance,
  accept an HTTP request, allow a patient to be recycled (:class:`Filters`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..domain.model import Change, ChangeType, Level, Metadata, Origin, Resource
from ..domain.registry import MetadataNames
from ..domain.resources import ResourceService
from ..errors import UnknownResource

log = logging.getLogger(__name__)

STABLE_TYPES = frozenset(
    {ChangeType.StableSeries, ChangeType.StableStudy, ChangeType.StablePatient}
)
UPDATED_TYPES = frozenset({ChangeType.UpdatedMetadata, ChangeType.UpdatedAttachment})


class EventSource:
    """Looks up what an event's payload needs, only when a handler asks for it, so that
    events nobody reads cost nothing."""

    def __init__(self, resources: ResourceService, names: MetadataNames) -> None:
        self.resources = resources
        self.names = names

    def resource(self, change: Change) -> Resource | None:
        if change.level is None:
            return None  # a job event
        return self.resources.index.get(change.level, change.public_id)

    def exists(self, change: Change) -> bool:
        return change.level is not None and self.resources.index.exists(
            change.level, change.public_id
        )

    def tags(self, resource: Resource) -> dict[str, Any]:
        if resource.level is Level.INSTANCE:
            return self.resources.instance_tags(resource.public_id, "simplified")
        return dict(resource.main_tags)

    def metadata(self, resource: Resource) -> dict[str, str]:
        return {self.names.name(k): v for k, v in self.resources.index.metadata(resource).items()}


def origin_of(metadata: dict[str, str]) -> dict[str, str]:
    """Orthanc's ``origin`` argument, rebuilt from an instance's core metadata."""
    return Origin(
        request_origin=metadata.get(Metadata.Origin.name, "Unknown"),
        remote_ip=metadata.get(Metadata.RemoteIP.name, ""),
        remote_aet=metadata.get(Metadata.RemoteAET.name, ""),
        called_aet=metadata.get(Metadata.CalledAET.name, ""),
        username=metadata.get(Metadata.HttpUsername.name, ""),
    ).as_orthanc()


class Event:
    """One notification: a change-log entry, with its payload looked up on demand. A job
    event is about no resource: its ``level`` is None and its ``resource_id`` is the job's
    ID (as Orthanc passes it)."""

    def __init__(self, change: Change, source: EventSource) -> None:
        self.change = change
        self._source = source
        self._resource: Resource | None = None
        self._metadata: dict[str, str] | None = None

    @property
    def seq(self) -> int:
        return self.change.seq

    @property
    def type(self) -> ChangeType:
        return self.change.change_type

    @property
    def level(self) -> Level | None:
        return self.change.level

    @property
    def resource_id(self) -> str:
        return self.change.public_id

    @property
    def date(self) -> str:
        return self.change.date

    def _lookup(self) -> Resource:
        if self._resource is None:
            self._resource = self._source.resource(self.change)
            if self._resource is None:
                raise UnknownResource(
                    f"{self.change.resource_type} {self.resource_id} no longer exists",
                    empty_body=False,
                )
        return self._resource

    def _detached(self) -> bool:
        """The event carries all there is of its subject, nothing to look up: a deleted or
        recycled resource, or a job."""
        return self.type in (ChangeType.Deleted, ChangeType.RecycledPatient) or self.type.is_job

    def tags(self) -> dict[str, Any]:
        """Instance events: the simplified tags of the file. Other levels: the resource's
        main DICOM tags. A recycled patient: its main tags, kept from before deletion. A
        Deleted event carries only its resource's id, a job event its job's: empty."""
        if self._detached():
            return dict((self.change.payload or {}).get("Tags", {}))
        return self._source.tags(self._lookup())

    def metadata(self) -> dict[str, str]:
        """All metadata of the resource, by name (kept from before deletion if recycled;
        empty for Deleted and job events)."""
        if self._detached():
            return dict((self.change.payload or {}).get("Metadata", {}))
        if self._metadata is None:
            self._metadata = self._source.metadata(self._lookup())
        return dict(self._metadata)

    def origin(self) -> dict[str, str]:
        """Where a stored instance came from, in Orthanc's ``origin`` shape."""
        return origin_of(self.metadata())

    def exists(self) -> bool:
        """Whether the resource is still there (always False for Deleted, RecycledPatient
        and job events)."""
        if self._detached():
            return False
        if self._resource is not None:
            return True
        return self._source.exists(self.change)

    def __repr__(self) -> str:
        return f"<Event {self.seq} {self.type.name} {self.change.path}>"


class Handler(Protocol):
    """A consumer of notifications. ``name`` is unique and stable across restarts: the
    delivery position is kept under it."""

    name: str

    def wants(self, change_type: ChangeType) -> bool:
        """Whether to deliver this type of event (others are skipped cheaply)."""
        ...

    def handle(self, event: Event) -> None:
        """Act on one event; raising makes the dispatcher retry, then record a failure."""
        ...


@dataclass
class FunctionHandler:
    """A handler made of a function and the event types it wants (all when empty)."""

    name: str
    function: Callable[[Event], None]
    types: frozenset[ChangeType] = frozenset()

    def wants(self, change_type: ChangeType) -> bool:
        return not self.types or change_type in self.types

    def handle(self, event: Event) -> None:
        self.function(event)


# A filter of patients about to be recycled: (patient id, main tags, metadata) -> keep going?
RecyclingFilter = Callable[[str, dict[str, Any], dict[str, str]], bool]
# A filter of incoming instances: (simplified tags, origin, info) -> accept?
InstanceFilter = Callable[[dict[str, Any], dict[str, str], dict[str, Any]], bool]
# A filter of HTTP requests: (method, uri, ip, username, headers) -> allow?
HttpFilter = Callable[[str, str, str, str, dict[str, str]], bool]


class Filters:
    """Synchronous decisions, consulted in the caller's thread, in the order they were
    added; the first "no" wins. A filter that raises is logged and counts as "yes", so a
    broken script never blocks the daemon nor loses an instance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._filters: dict[str, list[tuple[str, Callable[..., bool]]]] = {
            "recycling": [],
            "instance": [],
            "http": [],
        }

    def add_recycling_filter(self, name: str, function: RecyclingFilter) -> None:
        self._add("recycling", name, function)

    def add_instance_filter(self, name: str, function: InstanceFilter) -> None:
        self._add("instance", name, function)

    def add_http_filter(self, name: str, function: HttpFilter) -> None:
        self._add("http", name, function)

    def _add(self, kind: str, name: str, function: Callable[..., bool]) -> None:
        with self._lock:
            self._filters[kind].append((name, function))

    def remove(self, name: str) -> None:
        """Remove every filter registered under ``name`` (a script being unloaded)."""
        with self._lock:
            for kind, entries in self._filters.items():
                self._filters[kind] = [(n, f) for n, f in entries if n != name]

    def has(self, kind: str) -> bool:
        return bool(self._filters[kind])

    def _decide(self, kind: str, what: str, *args: Any) -> bool:
        with self._lock:
            entries = list(self._filters[kind])
        for name, function in entries:
            try:
                if not function(*args):
                    log.info("%s filter %s refused %s", kind, name, what)
                    return False
            except Exception:
                log.exception("%s filter %s failed on %s; allowed", kind, name, what)
        return True

    def allow_recycling(self, patient_id: str, tags: dict[str, Any], meta: dict[str, str]) -> bool:
        return self._decide("recycling", f"patient {patient_id}", patient_id, tags, meta)

    def accept_instance(
        self, tags: dict[str, Any], origin: dict[str, str], info: dict[str, Any]
    ) -> bool:
        what = f"instance {tags.get('SOPInstanceUID', '?')}"
        return self._decide("instance", what, tags, origin, info)

    def allow_http(
        self, method: str, uri: str, ip: str, username: str, headers: dict[str, str]
    ) -> bool:
        return self._decide("http", f"{method} {uri}", method, uri, ip, username, headers)
