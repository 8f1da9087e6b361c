"""The index interface: what the rest of dicomd may ask of the database.

It speaks in domain operations (store an instance, delete a resource, list children), never in
SQL, so that each backend (SQLite today, PostgreSQL later) writes its own queries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

from ..model import InstanceRecord, Level, Resource, StoreOutcome
from .store import FileInfo


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
    def is_protected(self, patient: Resource) -> bool: ...

    @abstractmethod
    def totals(self) -> Totals: ...

    @abstractmethod
    def resource_totals(self, resource: Resource) -> Totals: ...

    @abstractmethod
    def known_files(self, uuids: list[str]) -> set[str]:
        """Which of these file UUIDs have a row (used by crash recovery)."""
