"""Domain vocabulary shared by the index, the ingest pipeline and the REST layer: resource
levels, Orthanc's metadata numbers, content types and change types."""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..ids import ResourceIds


class Level(enum.IntEnum):
    """A resource level, numbered as Orthanc's ResourceType."""

    PATIENT = 0
    STUDY = 1
    SERIES = 2
    INSTANCE = 3

    @property
    def title(self) -> str:
        """Orthanc's name: "Patient", "Study", "Series", "Instance"."""
        return ("Patient", "Study", "Series", "Instance")[self]

    @property
    def plural(self) -> str:
        """The URI collection: "patients", "studies", "series", "instances"."""
        return ("patients", "studies", "series", "instances")[self]

    @property
    def children_key(self) -> str:
        """The key listing the children in the resource JSON."""
        return ("Studies", "Series", "Instances", "")[self]

    @classmethod
    def from_plural(cls, plural: str) -> Level:
        return _BY_PLURAL[plural]


_BY_PLURAL = {level.plural: level for level in Level}


class Metadata(enum.IntEnum):
    """Orthanc's core metadata numbers (user metadata take 1024..65535)."""

    IndexInSeries = 1
    ReceptionDate = 2
    RemoteAET = 3
    ExpectedNumberOfInstances = 4
    ModifiedFrom = 5
    AnonymizedFrom = 6
    LastUpdate = 7
    Origin = 8
    TransferSyntax = 9
    SopClassUid = 10
    RemoteIP = 11
    CalledAET = 12
    HttpUsername = 13
    PixelDataOffset = 14


class ContentType(enum.IntEnum):
    """Orthanc's system attachment numbers (user content types take 1024..65535)."""

    Dicom = 1
    DicomAsJson = 2
    DicomUntilPixelData = 3

    @property
    def public_name(self) -> str:
        return ("", "dicom", "dicom-as-json", "dicom-until-pixel-data")[self]


class ChangeType(enum.IntEnum):
    """Orthanc's change-log numbering (the core/REST one, not the Python plugin's)."""

    CompletedSeries = 1
    NewInstance = 2
    NewPatient = 3
    NewSeries = 4
    NewStudy = 5
    StablePatient = 12
    StableStudy = 13
    StableSeries = 14
    UpdatedAttachment = 15
    UpdatedMetadata = 16
    # Events Orthanc only signals to its listeners; dicomd keeps them in the event log,
    # hidden from /changes, so that handlers get them after a crash too. From 4096: Orthanc's
    # own numbers for such events; from 8192: dicomd's.
    Deleted = 4096
    RecycledPatient = 8192
    # A job's life, logged in the transaction that changes its state; the public id is the
    # job's ID and there is no resource level.
    JobSubmitted = 8193
    JobSuccess = 8194
    JobFailure = 8195

    @property
    def in_log(self) -> bool:
        """Shown by ``GET /changes`` (Orthanc's logged change types)."""
        return self < 4096

    @property
    def is_job(self) -> bool:
        """About a job, not a resource (its change has no level)."""
        return self in _JOB_TYPES


_JOB_TYPES = frozenset({ChangeType.JobSubmitted, ChangeType.JobSuccess, ChangeType.JobFailure})
_JOB_ENDS = {"Success": ChangeType.JobSuccess, "Failure": ChangeType.JobFailure}


def job_event(before: str | None, after: str) -> ChangeType | None:
    """The event a job logs when its state goes from ``before`` (None: the job is new) to
    ``after``: JobSubmitted for a new job, JobSuccess or JobFailure when it ends (a cancel
    included), nothing otherwise: not for a retry, a pause, nor a resubmit, as in Orthanc."""
    if before is None:
        return ChangeType.JobSubmitted
    if before == after:
        return None
    return _JOB_ENDS.get(after)


def series_status(expected: int | None, indexes: list[str | None]) -> str:
    """Orthanc's series status from ExpectedNumberOfInstances and the instances'
    IndexInSeries: Unknown, Missing, Complete or Inconsistent."""
    if not expected:
        return "Unknown"
    seen: set[int] = set()
    for text in indexes:
        try:
            index = int(text) if text is not None else None
        except ValueError:
            index = None
        if index is None:
            return "Unknown"
        if index < 1 or index > expected or index in seen:
            return "Inconsistent"
        seen.add(index)
    return "Complete" if len(seen) == expected else "Missing"


def now_iso() -> str:
    """Orthanc's timestamp format (UTC): ``YYYYMMDDTHHMMSS``."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime())


@dataclass(frozen=True)
class Origin:
    """Where an instance came from, as Orthanc's DicomInstanceOrigin describes it."""

    request_origin: str = "Unknown"  # RestApi, HotFolder, Lua, Plugins, DicomProtocol, Unknown
    remote_ip: str = ""
    remote_aet: str = ""
    called_aet: str = ""
    username: str = ""

    def as_orthanc(self) -> dict[str, str]:
        """Orthanc's ``origin`` argument of filters and callbacks (``RemoteIp``, not
        ``RemoteIP`` as in the metadata)."""
        origin = {"RequestOrigin": self.request_origin}
        if self.request_origin == "DicomProtocol":
            origin.update(RemoteIp=self.remote_ip, RemoteAet=self.remote_aet)
            origin["CalledAet"] = self.called_aet
        elif self.request_origin == "RestApi":
            origin.update(RemoteIp=self.remote_ip, Username=self.username)
        return origin


@dataclass(frozen=True)
class Change:
    """One entry of the change log, which is also the event log handlers are fed from.

    ``level`` is the resource's; a job event is about no resource: its level is None and
    its ``public_id`` is the job's ID."""

    seq: int
    change_type: ChangeType
    level: Level | None
    public_id: str
    date: str
    payload: dict[str, Any] | None = None  # what a hidden event keeps of its resource

    def __post_init__(self) -> None:
        if (self.level is None) != self.change_type.is_job:
            raise ValueError(f"a {self.change_type.name} change with level {self.level!r}")

    @property
    def resource_type(self) -> str | None:
        """Orthanc's name of the level ("Patient"...); None for a job event."""
        return self.level.title if self.level is not None else None

    @property
    def path(self) -> str:
        """The REST path of what the change is about: ``/studies/{id}``, ``/jobs/{id}``."""
        collection = self.level.plural if self.level is not None else "jobs"
        return f"/{collection}/{self.public_id}"


@dataclass(frozen=True)
class StorageLimits:
    """``MaximumStorageSize`` (in bytes here) and ``MaximumPatientCount``; 0 is no limit."""

    max_bytes: int = 0
    max_patients: int = 0

    def exceeded(self, disk_size: int, patients: int) -> bool:
        """Whether a store that leads to these totals needs room (or must be refused)."""
        return bool(
            (self.max_bytes and disk_size > self.max_bytes)
            or (self.max_patients and patients > self.max_patients)
        )


@dataclass
class InstanceRecord:
    """Everything the index stores for one new instance, computed before the transaction."""

    ids: ResourceIds
    main_tags: Callable[[Level], dict[str, str]]  # computed on demand, for new resources
    instance_metadata: dict[int, str]
    series_metadata: dict[int, str]  # written only when the series is created
    files: list  # list[FileInfo]
    overwrite: bool
    stable_deadline: float  # when the series, study and patient become stable (Unix time)
    limits: StorageLimits = field(default_factory=StorageLimits)
    date: str = field(default_factory=now_iso)


@dataclass
class StoreOutcome:
    status: str  # "Success", "AlreadyStored", or "Full" (over the limits; nothing stored)
    changes: list[Change] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)  # replaced by an overwrite


@dataclass
class Resource:
    """One row of the index, as the resource service needs it. The main DICOM tags come as
    the index keeps them, JSON, and are decoded when first read: most lookups only need to
    know the resource is there (an event's subject, a metadata write)."""

    internal_id: int
    level: Level
    public_id: str
    parent_public_id: str | None
    main_tags_json: str = field(default="{}", repr=False)

    @cached_property
    def main_tags(self) -> dict[str, str]:
        tags: dict[str, str] = json.loads(self.main_tags_json)
        return tags


@dataclass
class JobRecord:
    """A job as the index keeps it; ``data`` is the job type's own state (JSON)."""

    id: str
    type: str
    state: str  # Pending, Running, Success, Failure, Paused, Retry
    priority: int
    created: float
    data: dict[str, Any]
    completed: float | None = None
    next_attempt: float = 0.0
    control: str | None = None  # "pause" or "cancel", asked while Running
