"""Events, handlers and filters: the one interface that Lua scripts, Python scripts and
built-in features (forwarding...) plug into.

Two kinds, as in Orthanc and pynetdicom:

- **Notifications** (stored instance, stable resource, deleted, recycled, updated metadata or
  attachment) are entries of the durable change log. Each registered :class:`Handler` gets
  them in order, at least once, in its own thread, after the transaction that logged them
  committed (see ``delivery.py``).
- **Filters** decide synchronously, in the caller's thread: accept an incoming instance,
  accept an HTTP request, allow a patient to be recycled (:class:`Filters`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import UnknownResource
from .model import Change, ChangeType, Level, Metadata, Resource
from .registry import MetadataNames
from .resources import ResourceService

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
        return self.resources.index.get(change.level, change.public_id)

    def tags(self, resource: Resource) -> dict[str, Any]:
        if resource.level is Level.INSTANCE:
            return self.resources.instance_tags(resource.public_id, "simplified")
        return dict(resource.main_tags)

    def metadata(self, resource: Resource) -> dict[str, str]:
        return {self.names.name(k): v for k, v in self.resources.index.metadata(resource).items()}


def origin_of(metadata: dict[str, str]) -> dict[str, str]:
    """Orthanc's ``origin`` argument, rebuilt from an instance's core metadata (note the
    casing: ``RemoteIp`` here, ``RemoteIP`` in the metadata, as in Orthanc)."""
    request_origin = metadata.get(Metadata.Origin.name, "Unknown")
    origin = {"RequestOrigin": request_origin}
    if request_origin == "DicomProtocol":
        origin["RemoteIp"] = metadata.get(Metadata.RemoteIP.name, "")
        origin["RemoteAet"] = metadata.get(Metadata.RemoteAET.name, "")
        origin["CalledAet"] = metadata.get(Metadata.CalledAET.name, "")
    elif request_origin == "RestApi":
        origin["RemoteIp"] = metadata.get(Metadata.RemoteIP.name, "")
        origin["Username"] = metadata.get(Metadata.HttpUsername.name, "")
    return origin


class Event:
    """One notification: a change-log entry, with its payload looked up on demand."""

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
    def level(self) -> Level:
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
                    f"{self.level.title} {self.resource_id} no longer exists", empty_body=False
                )
        return self._resource

    def tags(self) -> dict[str, Any]:
        """Instance events: the simplified tags of the file. Other levels: the resource's
        main DICOM tags. A recycled patient: its main tags, kept from before deletion. A
        Deleted event carries only its resource's id: empty."""
        if self.change.payload is not None or self.type is ChangeType.Deleted:
            return dict((self.change.payload or {}).get("Tags", {}))
        return self._source.tags(self._lookup())

    def metadata(self) -> dict[str, str]:
        """All metadata of the resource, by name (kept from before deletion if recycled)."""
        if self.change.payload is not None or self.type is ChangeType.Deleted:
            return dict((self.change.payload or {}).get("Metadata", {}))
        if self._metadata is None:
            self._metadata = self._source.metadata(self._lookup())
        return dict(self._metadata)

    def origin(self) -> dict[str, str]:
        """Where a stored instance came from, in Orthanc's ``origin`` shape."""
        return origin_of(self.metadata())

    def exists(self) -> bool:
        """Whether the resource is still there (always False for Deleted events)."""
        if self.type in (ChangeType.Deleted, ChangeType.RecycledPatient):
            return False
        try:
            self._lookup()
        except UnknownResource:
            return False
        return True

    def __repr__(self) -> str:
        return f"<Event {self.seq} {self.type.name} {self.level.title} {self.resource_id}>"


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


class Filters:
    """Synchronous decisions, consulted in the caller's thread. A filter that raises is
    logged and counts as "allow", so a broken script never blocks the daemon."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recycling: list[tuple[str, RecyclingFilter]] = []

    def add_recycling_filter(self, name: str, function: RecyclingFilter) -> None:
        with self._lock:
            self._recycling.append((name, function))

    def remove(self, name: str) -> None:
        with self._lock:
            self._recycling = [(n, f) for n, f in self._recycling if n != name]

    def _snapshot(self) -> Iterable[tuple[str, RecyclingFilter]]:
        with self._lock:
            return list(self._recycling)

    def allow_recycling(self, patient_id: str, tags: dict[str, Any], meta: dict[str, str]) -> bool:
        for name, function in self._snapshot():
            try:
                if not function(patient_id, tags, meta):
                    log.info("recycling filter %s kept patient %s", name, patient_id)
                    return False
            except Exception:
                log.exception("recycling filter %s failed on patient %s", name, patient_id)
        return True
