"""The SQLite index's user-facing annotations: metadata, attachments, protection and the
change log, each write with its Updated* change in the same transaction."""

from __future__ import annotations

import hashlib
import sqlite3

from ..domain.model import Change, ChangeType, Resource, now_iso
from .index import RevisionCheck
from .sqlite_db import (
    ATTACHMENT_COLUMNS,
    file_info_from_row,
)
from .sqlite_events import SQLiteEvents
from .sqlite_jobs import SQLiteJobs
from .store import FileInfo


def recycling_order(seq: int, after: bool = False) -> int:
    """A patient's place in the recycling order: twice the Seq of its latest NewInstance,
    or, when it is unprotected, one more than twice the latest Seq, so that it comes after
    every patient stored so far and before the next one."""
    return 2 * seq + (1 if after else 0)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class SQLiteAnnotations(SQLiteEvents, SQLiteJobs):
    # -- metadata, attachments, protection, change log -------------------------------------
    def _log_update(
        self, db: sqlite3.Connection, change_type: ChangeType, resource: Resource
    ) -> Change:
        return self._log_change(
            db, change_type, resource.internal_id, resource.level, resource.public_id, now_iso()
        )

    def set_metadata(
        self, resource: Resource, kind: int, value: str, check: RevisionCheck
    ) -> tuple[int, Change]:
        with self._transaction() as db:
            row = db.execute(
                "SELECT value, revision FROM metadata WHERE id = ? AND type = ?",
                (resource.internal_id, kind),
            ).fetchone()
            check((row[1], _md5(row[0])) if row else None)
            revision = row[1] + 1 if row else 0
            try:
                db.execute(
                    "INSERT INTO metadata (id, type, value, revision) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (id, type) DO UPDATE SET value = excluded.value, "
                    "revision = excluded.revision",
                    (resource.internal_id, kind, value, revision),
                )
            except sqlite3.IntegrityError:  # the resource's row is gone (its foreign key)
                self._require(db, resource)
                raise
            return revision, self._log_update(db, ChangeType.UpdatedMetadata, resource)

    def delete_metadata(self, resource: Resource, kind: int, check: RevisionCheck) -> Change | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT value, revision FROM metadata WHERE id = ? AND type = ?",
                (resource.internal_id, kind),
            ).fetchone()
            if row is None:
                return None
            check((row[1], _md5(row[0])))
            db.execute(
                "DELETE FROM metadata WHERE id = ? AND type = ?", (resource.internal_id, kind)
            )
            return self._log_update(db, ChangeType.UpdatedMetadata, resource)

    def _attachment_row(
        self, db: sqlite3.Connection, resource: Resource, content_type: int
    ) -> tuple[FileInfo, int] | None:
        row = db.execute(
            f"SELECT {ATTACHMENT_COLUMNS}, revision FROM attachments "
            "WHERE id = ? AND content_type = ?",
            (resource.internal_id, content_type),
        ).fetchone()
        return (file_info_from_row(row[:-1]), row[-1]) if row else None

    def set_attachment(
        self, resource: Resource, info: FileInfo, check: RevisionCheck
    ) -> tuple[int, Change, list[str]]:
        with self._transaction() as db:
            self._require(db, resource)
            current = self._attachment_row(db, resource, info.content_type)
            check((current[1], current[0].uncompressed_md5) if current else None)
            replaced: list[str] = []
            revision = 0
            if current is not None:
                replaced = [current[0].uuid]
                revision = current[1] + 1
                db.execute(
                    "INSERT OR IGNORE INTO file_deletions (uuid) VALUES (?)", (current[0].uuid,)
                )
                db.execute(
                    "DELETE FROM attachments WHERE id = ? AND content_type = ?",
                    (resource.internal_id, info.content_type),
                )
            self._insert_attachments(db, resource.internal_id, [info], revision)
            return revision, self._log_update(db, ChangeType.UpdatedAttachment, resource), replaced

    def delete_attachment(
        self, resource: Resource, content_type: int, check: RevisionCheck
    ) -> tuple[Change, list[str]] | None:
        with self._transaction() as db:
            current = self._attachment_row(db, resource, content_type)
            if current is None:
                return None
            check((current[1], current[0].uncompressed_md5))
            db.execute("INSERT OR IGNORE INTO file_deletions (uuid) VALUES (?)", (current[0].uuid,))
            db.execute(
                "DELETE FROM attachments WHERE id = ? AND content_type = ?",
                (resource.internal_id, content_type),
            )
            change = self._log_update(db, ChangeType.UpdatedAttachment, resource)
            return change, [current[0].uuid]

    def set_protected(self, patient: Resource, protected: bool) -> None:
        with self._transaction() as db:
            self._require(db, patient)
            if protected:
                db.execute("UPDATE patients SET protected = 1 WHERE id = ?", (patient.internal_id,))
            else:
                db.execute(
                    "UPDATE patients SET protected = 0, recycling_order = ? "
                    "WHERE id = ? AND protected = 1",
                    (recycling_order(self._last_seq(db), after=True), patient.internal_id),
                )

    # -- reads -----------------------------------------------------------------------------
    def metadata_entry(self, resource: Resource, kind: int) -> tuple[str, int] | None:
        row = self._reader.execute(
            "SELECT value, revision FROM metadata WHERE id = ? AND type = ?",
            (resource.internal_id, kind),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def attachment_entry(
        self, resource: Resource, content_type: int
    ) -> tuple[FileInfo, int] | None:
        return self._attachment_row(self._reader, resource, content_type)
