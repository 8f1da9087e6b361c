"""The index interface: what the rest of dicomd may ask of the database.

It speaks in domain operations (store an instance, delete a resource, list children), never in
SQL, so that each backend (SQLite today, PostgreSQL later) writes its own queries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..model import Change, InstanceRecord, Level, Resource, StoreOutcome
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
class DeleteOutcome:
    """What a deletion removed: the resources (deepest first) and the files to unlink."""

    deleted: list[tuple[Level, str]]
    remaining_ancestor: tuple[Level, str] | None
    files: list[str]


class Index(ABC):
    """A backend of the index. Implementations must be safe to call from many threads."""

    @abstractmethod
    def close(self) -> None: ...

    # -- writes ----------------------------------------------------------------------------
    @abstractmethod
    def store_instance(self, record: InstanceRecord) -> StoreOutcome:
        """Add an instance (and any missing ancestors), its metadata, files and changes in
        one transaction. A duplicate is "AlreadyStored" unless ``record.overwrite``."""

    @abstractmethod
    def delete_resource(self, level: Level, public_id: str) -> DeleteOutcome | None:
        """Delete a resource, its descendants and ancestors left empty; None if unknown.
        The returned files are recorded as pending deletions until :meth:`forget_files`."""

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
    def set_protected(self, patient: Resource, protected: bool) -> None:
        """Protect a patient from recycling; unprotecting moves it to the end of the
        recycling order. UnknownResource if the patient is gone."""

    @abstractmethod
    def clear_changes(self) -> None:
        """Empty the change log; sequence numbers keep growing from where they were."""

    # -- reads -----------------------------------------------------------------------------
    @abstractmethod
    def lookup(self, public_id: str) -> Resource | None: ...

    @abstractmethod
    def get(self, level: Level, public_id: str) -> Resource | None: ...

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
        """Up to ``limit`` changes after sequence number ``since``, and whether that was
        the end of the log."""

    @abstractmethod
    def last_change(self) -> Change | None: ...

    @abstractmethod
    def last_change_seq(self) -> int:
        """The latest sequence number ever given, even if its change was deleted."""

    @abstractmethod
    def is_protected(self, patient: Resource) -> bool: ...

    @abstractmethod
    def totals(self) -> Totals: ...

    @abstractmethod
    def resource_totals(self, resource: Resource) -> Totals: ...

    @abstractmethod
    def known_files(self, uuids: list[str]) -> set[str]:
        """Which of these file UUIDs have a row (used by crash recovery)."""
