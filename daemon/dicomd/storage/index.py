"""The index interface: what the rest of dicomd may ask of the database.

It speaks in domain operations (store an instance, delete a resource, list children), never in
SQL, so that each backend (SQLite today, PostgreSQL later) writes its own queries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..domain.model import Change, InstanceRecord, JobRecord, Level, Resource, StoreOutcome
from .store import FileInfo

# Called inside a write transaction with the current (revision, MD5 of the value) of a
# metadata or attachment, or None if it does not exist; raises to refuse the write.
RevisionCheck = Callable[[tuple[int, str] | None], None]


@dataclass(frozen=True)
class Totals:
    """Counts and sizes for ``/statistics`` or one resource's ``/statistics``."""

    patients: int
    studies: int
    series: int
    instances: int
    disk_size: int
    uncompressed_size: int
    dicom_disk_size: int
    dicom_uncompressed_size: int


@dataclass(frozen=True)
class HandlerFailure:
    """An event a handler failed on, after its retries; kept for the API to show."""

    handler: str
    change: Change
    attempts: int
    error: str
    date: str = ""
    id: int = 0


@dataclass(frozen=True)
class DeleteOutcome:
    """What a deletion removed: the resources (deepest first) and the files to unlink."""

    deleted: list[tuple[Level, str]]
    remaining_ancestor: tuple[Level, str] | None
    files: list[str]
    events: list[Change]  # Deleted for each resource (and RecycledPatient), in the event log


@dataclass(frozen=True)
class ExportEntry:
    """One row of the exported resources log (``/exports``): a resource sent to a modality
    or a peer, with the identifying tags of it and its ancestors."""

    seq: int
    level: Level
    public_id: str
    remote: str
    date: str
    patient_id: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""


class Index(ABC):
    """A backend of the index. Implementations must be safe to call from many threads."""

    @abstractmethod
    def close(self) -> None: ...

    # -- writes ----------------------------------------------------------------------------
    @abstractmethod
    def store_instance(self, record: InstanceRecord) -> StoreOutcome:
        """Add an instance (and any missing ancestors), its metadata, files and changes in
        one transaction. A duplicate is "AlreadyStored" unless ``record.overwrite``; a store
        that would exceed ``record.limits`` is rolled back and answered "Full"."""

    @abstractmethod
    def delete_resource(
        self, level: Level, public_id: str, recycled: dict[str, Any] | None = None
    ) -> DeleteOutcome | None:
        """Delete a resource, its descendants and ancestors left empty; None if unknown.
        Logs a Deleted event for each, and a RecycledPatient event with ``recycled`` as its
        payload when given. The returned files are recorded as pending deletions until
        :meth:`forget_files`."""

    @abstractmethod
    def forget_files(self, uuids: Iterable[str]) -> None:
        """The given files were unlinked: drop them from the pending deletions."""

    @abstractmethod
    def pending_file_deletions(self) -> list[str]:
        """Files whose rows are gone but whose unlinking was not confirmed (after a crash)."""

    @abstractmethod
    def set_metadata(
        self, resource: Resource, kind: int, value: str, check: RevisionCheck
    ) -> tuple[int, Change]:
        """Write one metadata and log UpdatedMetadata; returns the new revision.
        UnknownResource if the resource is gone."""

    @abstractmethod
    def delete_metadata(self, resource: Resource, kind: int, check: RevisionCheck) -> Change | None:
        """Delete one metadata and log UpdatedMetadata; None if it was not there."""

    @abstractmethod
    def set_attachment(
        self, resource: Resource, info: FileInfo, check: RevisionCheck
    ) -> tuple[int, Change, list[str]]:
        """Record (or replace) an attachment and log UpdatedAttachment. Returns the new
        revision and the replaced files, pending deletion until :meth:`forget_files`."""

    @abstractmethod
    def delete_attachment(
        self, resource: Resource, content_type: int, check: RevisionCheck
    ) -> tuple[Change, list[str]] | None:
        """Delete an attachment and log UpdatedAttachment; None if it was not there."""

    @abstractmethod
    def reconstruct_instance(
        self,
        instance: Resource,
        main_tags: Mapping[Level, dict[str, str]],
        instance_metadata: Mapping[int, str],
    ) -> None:
        """Replace the main DICOM tags of an instance and of its series, study and patient
        (as read again from its file), and set some of the instance's metadata; nothing is
        logged. UnknownResource if the instance is gone."""

    @abstractmethod
    def set_protected(self, patient: Resource, protected: bool) -> None:
        """Protect a patient from recycling; unprotecting moves it to the end of the
        recycling order. UnknownResource if the patient is gone."""

    @abstractmethod
    def clear_changes(self) -> None:
        """Empty the change log; sequence numbers keep growing from where they were, and
        handlers still get the events they had not seen."""

    @abstractmethod
    def save_handler_positions(self, positions: Mapping[str, int]) -> None:
        """Persist how far handlers got (a position never moves back)."""

    @abstractmethod
    def record_failure(self, failure: HandlerFailure) -> None: ...

    @abstractmethod
    def prune_events(self, delivered: int) -> int:
        """Forget hidden events up to ``delivered``, which every handler has seen."""

    # -- run-time settings and the exports log -------------------------------------------
    @abstractmethod
    def runtime_settings(self) -> dict[str, str]:
        """Settings changed at run time (key -> JSON text), shared by the daemon's processes."""

    @abstractmethod
    def set_runtime_setting(self, key: str, value: str | None) -> None:
        """Save a run-time setting (JSON text), or forget it (None)."""

    @abstractmethod
    def clear_runtime_settings(self) -> None: ...

    @abstractmethod
    def log_exports(self, resources: Iterable[Resource], remote: str, date: str) -> None:
        """Log that ``resources`` were sent to ``remote``, in one transaction, each with the
        identifying tags of its own level and its ancestors'."""

    @abstractmethod
    def exports(self, since: int, limit: int) -> tuple[list[ExportEntry], bool]:
        """Exports after ``since`` (exclusive), at most ``limit``; and whether none is left."""

    @abstractmethod
    def last_export(self) -> ExportEntry | None: ...

    @abstractmethod
    def clear_exports(self) -> None: ...

    # -- peers and jobs --------------------------------------------------------------------
    @abstractmethod
    def peer_overrides(self) -> dict[str, dict[str, Any] | None]:
        """Peers defined (a definition) or deleted (None) at run time."""

    @abstractmethod
    def save_peer(self, name: str, definition: dict[str, Any] | None) -> None: ...

    @abstractmethod
    def create_job(self, job: JobRecord, instances: list[str]) -> Change:
        """A new job, with the instances it sends (stored once: they never change), and
        its JobSubmitted event, in one transaction."""

    @abstractmethod
    def job_instances(self, job_id: str) -> list[str]: ...

    @abstractmethod
    def job_control(self, job_id: str) -> str | None:
        """A pause or cancel asked while the job runs."""

    @abstractmethod
    def save_job(self, job: JobRecord) -> Change | None:
        """Update a job's state and small data. In the same transaction, log the event
        :func:`~dicomd.model.job_event` gives for the move from the state saved before
        (JobSuccess or JobFailure when the job ends); returns it."""

    @abstractmethod
    def get_job(self, job_id: str) -> JobRecord | None: ...

    @abstractmethod
    def list_jobs(self) -> list[JobRecord]: ...

    @abstractmethod
    def claim_job(self, now: float, skip_peers: Iterable[str]) -> JobRecord | None:
        """Atomically take the most urgent due job and mark it Running."""

    @abstractmethod
    def set_job_control(self, job_id: str, control: str | None) -> None: ...

    @abstractmethod
    def delete_job(self, job_id: str) -> None: ...

    @abstractmethod
    def requeue_running_jobs(self) -> int: ...

    @abstractmethod
    def trim_job_history(self, keep: int) -> None: ...

    # -- reads -----------------------------------------------------------------------------
    @abstractmethod
    def lookup(self, public_id: str) -> Resource | None: ...

    @abstractmethod
    def get(self, level: Level, public_id: str) -> Resource | None: ...

    @abstractmethod
    def exists(self, level: Level, public_id: str) -> bool:
        """Whether the resource is indexed: :meth:`get` without reading its row."""

    @abstractmethod
    def list_ids(self, level: Level, since: int = 0, limit: int = 0) -> list[str]:
        """Public IDs of one level in insertion order; ``limit`` 0 means no limit."""

    @abstractmethod
    def children(self, resource: Resource) -> list[str]: ...

    @abstractmethod
    def metadata(self, resource: Resource) -> dict[int, str]: ...

    @abstractmethod
    def attachments(self, resource: Resource) -> dict[int, FileInfo]: ...

    @abstractmethod
    def instance_indexes(self, series: Resource) -> list[str | None]:
        """The IndexInSeries metadata of every instance of a series (None where missing)."""

    @abstractmethod
    def metadata_entry(self, resource: Resource, kind: int) -> tuple[str, int] | None:
        """One metadata's value and revision."""

    @abstractmethod
    def attachment_entry(
        self, resource: Resource, content_type: int
    ) -> tuple[FileInfo, int] | None:
        """One attachment and its revision."""

    @abstractmethod
    def changes(self, since: int, limit: int) -> tuple[list[Change], bool]:
        """Up to ``limit`` changes of /changes after ``since``, and whether that was the end
        of the log. They are numbered (``Change.seq``) among logged changes only, as
        Orthanc numbers them, not by their place in the event log."""

    @abstractmethod
    def last_change(self) -> Change | None: ...

    @abstractmethod
    def events_after(self, seq: int, limit: int) -> list[Change]:
        """The event log after ``seq``: every change, those hidden from /changes included."""

    @abstractmethod
    def handler_positions(self) -> dict[str, int]: ...

    @abstractmethod
    def handler_failure_counts(self) -> dict[str, int]:
        """How many events each handler gave up on, over all time."""

    @abstractmethod
    def handler_failures(self, since: int = 0, limit: int = 100) -> list[HandlerFailure]: ...

    @abstractmethod
    def last_change_seq(self) -> int:
        """The latest sequence number ever given, even if its change was deleted."""

    @abstractmethod
    def last_logged_seq(self) -> int:
        """The last sequence number of a change that /changes showed or would have shown
        (deleted and cleared ones included; hidden events not)."""

    @abstractmethod
    def is_stable(self, resource: Resource) -> bool:
        """No instance arrived below it for ``StableAge`` seconds (or its stable event fired)."""

    @abstractmethod
    def next_stable_deadline(self) -> float | None:
        """The earliest time at which a waiting resource becomes stable."""

    @abstractmethod
    def take_stable(self, now: float) -> list[Change]:
        """Mark every resource whose deadline passed as stable and log its Stable* change,
        series before study before patient; returns the changes."""

    @abstractmethod
    def recycling_candidates(self, exclude: Iterable[str], limit: int) -> list[Resource]:
        """Unprotected patients, oldest in the recycling order first, but those in
        ``exclude``."""

    @abstractmethod
    def expire_stability(self) -> None:
        """Make every waiting resource due now (``dicomd test-script``)."""

    @abstractmethod
    def set_stable(self, resource: Resource, stable: bool, deadline: float) -> bool:
        """Force a series, study or patient stable now (logging its Stable* change) or
        unstable until ``deadline``; whether its status changed."""

    @abstractmethod
    def is_protected(self, patient: Resource) -> bool: ...

    @abstractmethod
    def totals(self) -> Totals: ...

    @abstractmethod
    def resource_totals(self, resource: Resource) -> Totals: ...

    @abstractmethod
    def known_files(self, uuids: list[str]) -> set[str]:
        """Which of these file UUIDs have a row (used by crash recovery)."""
