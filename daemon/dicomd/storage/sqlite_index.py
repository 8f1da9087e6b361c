"""The embedded index backend: SQLite in WAL mode (plumbing in ``sqlite_db``, metadata,
attachments and the change log in ``sqlite_annotations``; resources here)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from ..domain.model import (
    Change,
    ChangeType,
    ContentType,
    InstanceRecord,
    Level,
    Metadata,
    Resource,
    StoreOutcome,
    now_iso,
    series_status,
)
from .index import DeleteOutcome, Index, Totals
from .sqlite_annotations import SQLiteAnnotations, recycling_order
from .sqlite_db import ATTACHMENT_COLUMNS, file_info_from_row
from .sqlite_runtime import SQLiteRuntime
from .store import FileInfo

_RESOURCE_COLUMNS = "r.id, r.level, r.public_id, p.public_id, r.main_tags"
_RESOURCE_QUERY = (
    f"SELECT {_RESOURCE_COLUMNS} FROM resources r LEFT JOIN resources p ON p.id = r.parent_id"
)
_STABLE_CHANGE = {
    Level.SERIES: ChangeType.StableSeries,
    Level.STUDY: ChangeType.StableStudy,
    Level.PATIENT: ChangeType.StablePatient,
}
_NEW_LEVEL_CHANGE = {
    Level.SERIES: ChangeType.NewSeries,
    Level.STUDY: ChangeType.NewStudy,
    Level.PATIENT: ChangeType.NewPatient,
}


class _OverLimits(Exception):
    """Raised inside a store transaction to roll it back: the limits would be exceeded."""


def _upsert_rows(
    db: sqlite3.Connection, table: str, key: str, column: str, rows: list[tuple[Any, ...]]
) -> None:
    """Insert or update ``rows`` in one statement: one step of SQLite, where
    ``executemany`` takes one per row, each giving up and taking back the GIL (which
    a busy thread can then hold for a while, with the index's write lock taken)."""
    if not rows:
        return
    marks = "(" + ", ".join("?" * len(rows[0])) + ")"
    db.execute(
        f"INSERT INTO {table} VALUES {', '.join([marks] * len(rows))} "
        f"ON CONFLICT {key} DO UPDATE SET {column} = excluded.{column}",
        [value for row in rows for value in row],
    )


def _resource(row: tuple) -> Resource:
    return Resource(row[0], Level(row[1]), row[2], row[3], row[4])


class SQLiteIndex(SQLiteAnnotations, SQLiteRuntime, Index):
    """The index in one SQLite file under ``IndexDirectory``."""

    # -- writes ----------------------------------------------------------------------------
    def store_instance(self, record: InstanceRecord) -> StoreOutcome:
        try:
            return self._store_instance(record)
        except _OverLimits:
            return StoreOutcome(status="Full")

    def _store_instance(self, record: InstanceRecord) -> StoreOutcome:
        ids = record.ids
        chain = ((Level.PATIENT, ids.patient), (Level.STUDY, ids.study), (Level.SERIES, ids.series))
        with self._transaction() as db:
            outcome = StoreOutcome(status="Success")
            existing = dict(
                db.execute(
                    "SELECT public_id, id FROM resources WHERE public_id IN (?, ?, ?, ?)",
                    (ids.patient, ids.study, ids.series, ids.instance),
                ).fetchall()
            )
            if ids.instance in existing:
                if not record.overwrite:
                    return StoreOutcome(status="AlreadyStored")
                old = existing[ids.instance]
                outcome.removed_files = self._delete_files_of(db, [old])
                db.execute("DELETE FROM resources WHERE id = ?", (old,))

            # Ancestors: found, or created (their main tags are computed only then).
            row_ids: dict[Level, int] = {}
            created: list[Level] = []
            parent_id: int | None = None
            for level, public_id in chain:
                found = existing.get(public_id)
                if found is None:
                    found = self._insert_resource(
                        db, level, public_id, parent_id, record.main_tags(level)
                    )
                    created.append(level)
                row_ids[level] = parent_id = found
            instance_id = self._insert_resource(
                db, Level.INSTANCE, ids.instance, parent_id, record.main_tags(Level.INSTANCE)
            )

            metadata = [(instance_id, k, v) for k, v in record.instance_metadata.items()]
            if Level.SERIES in created:
                metadata += [
                    (row_ids[Level.SERIES], k, v) for k, v in record.series_metadata.items()
                ]
            metadata += [(row_ids[lvl], int(Metadata.LastUpdate), record.date) for lvl, _ in chain]
            _upsert_rows(db, "metadata (id, type, value)", "(id, type)", "value", metadata)
            self._insert_attachments(db, instance_id, record.files)
            changes = [
                self._log_change(
                    db,
                    ChangeType.NewInstance,
                    instance_id,
                    Level.INSTANCE,
                    ids.instance,
                    record.date,
                )
            ]
            public = dict(chain)
            for level in (Level.SERIES, Level.STUDY, Level.PATIENT):
                if level in created:
                    changes.append(
                        self._log_change(
                            db,
                            _NEW_LEVEL_CHANGE[level],
                            row_ids[level],
                            level,
                            public[level],
                            record.date,
                        )
                    )
            if self._series_completed(db, row_ids[Level.SERIES], record):
                changes.append(
                    self._log_change(
                        db,
                        ChangeType.CompletedSeries,
                        row_ids[Level.SERIES],
                        Level.SERIES,
                        ids.series,
                        record.date,
                    )
                )
            _upsert_rows(
                db,
                "unstable (id, deadline)",
                "(id)",
                "deadline",
                [(row_ids[level], record.stable_deadline) for level, _ in chain],
            )
            # Storing any instance of a patient moves it to the end of the recycling order,
            # which the change log's sequence number gives (see _recycling_order).
            db.execute(
                "INSERT INTO patients (id, recycling_order) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET recycling_order = excluded.recycling_order",
                (row_ids[Level.PATIENT], recycling_order(changes[0].seq)),
            )
            if record.limits.max_bytes or record.limits.max_patients:
                totals = dict(
                    db.execute(
                        "SELECT key, value FROM globals WHERE key IN ('disk_size', 'count_0')"
                    ).fetchall()
                )
                if record.limits.exceeded(totals["disk_size"], totals["count_0"]):
                    raise _OverLimits  # rolls the whole store back
            outcome.changes = changes
            return outcome

    @staticmethod
    def _series_completed(db: sqlite3.Connection, series_id: int, record: InstanceRecord) -> bool:
        """Whether this instance completed its series (logged as CompletedSeries)."""
        if Metadata.IndexInSeries not in record.instance_metadata:
            return False
        row = db.execute(
            "SELECT value FROM metadata WHERE id = ? AND type = ?",
            (series_id, int(Metadata.ExpectedNumberOfInstances)),
        ).fetchone()
        expected = int(row[0]) if row and row[0].isdigit() else 0
        if not expected:
            return False
        (count,) = db.execute(
            "SELECT COUNT(*) FROM resources WHERE parent_id = ?", (series_id,)
        ).fetchone()
        if count != expected:
            return False
        indexes = [
            r[0]
            for r in db.execute(
                "SELECT m.value FROM resources r LEFT JOIN metadata m "
                "ON m.id = r.id AND m.type = ? WHERE r.parent_id = ?",
                (int(Metadata.IndexInSeries), series_id),
            )
        ]
        return series_status(expected, indexes) == "Complete"

    @staticmethod
    def _insert_resource(
        db: sqlite3.Connection,
        level: Level,
        public_id: str,
        parent_id: int | None,
        main_tags: dict[str, str],
    ) -> int:
        cur = db.execute(
            "INSERT INTO resources (level, public_id, parent_id, main_tags) VALUES (?, ?, ?, ?)",
            (int(level), public_id, parent_id, json.dumps(main_tags, ensure_ascii=False)),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    @staticmethod
    def _descendants(db: sqlite3.Connection, root_id: int) -> list[int]:
        rows = db.execute(
            "WITH RECURSIVE tree(id) AS (SELECT ? UNION ALL "
            "SELECT r.id FROM resources r JOIN tree t ON r.parent_id = t.id) SELECT id FROM tree",
            (root_id,),
        ).fetchall()
        return [r[0] for r in rows]

    @staticmethod
    def _delete_files_of(db: sqlite3.Connection, resource_ids: list[int]) -> list[str]:
        uuids: list[str] = []
        for start in range(0, len(resource_ids), 500):
            chunk = resource_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            uuids += [
                r[0]
                for r in db.execute(f"SELECT uuid FROM attachments WHERE id IN ({marks})", chunk)
            ]
        db.executemany(
            "INSERT OR IGNORE INTO file_deletions (uuid) VALUES (?)", [(u,) for u in uuids]
        )
        return uuids

    def delete_resource(
        self, level: Level, public_id: str, recycled: dict[str, Any] | None = None
    ) -> DeleteOutcome | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, parent_id FROM resources WHERE public_id = ? AND level = ?",
                (public_id, int(level)),
            ).fetchone()
            if row is None:
                return None
            resource_id, parent_id = row
            subtree = self._descendants(db, resource_id)
            deleted = self._levels_of(db, subtree)
            files = self._delete_files_of(db, subtree)
            db.execute("DELETE FROM resources WHERE id = ?", (resource_id,))
            # Ancestors left without children go too, as in Orthanc.
            remaining: tuple[Level, str] | None = None
            while parent_id is not None:
                prow = db.execute(
                    "SELECT level, public_id, parent_id FROM resources WHERE id = ?", (parent_id,)
                ).fetchone()
                has_child = db.execute(
                    "SELECT 1 FROM resources WHERE parent_id = ? LIMIT 1", (parent_id,)
                ).fetchone()
                if has_child:
                    remaining = (Level(prow[0]), prow[1])
                    break
                deleted.append((Level(prow[0]), prow[1]))
                db.execute("DELETE FROM resources WHERE id = ?", (parent_id,))
                parent_id = prow[2]
            date = now_iso()
            events = [
                self._log_change(db, ChangeType.Deleted, None, lvl, pid, date)
                for lvl, pid in deleted
            ]
            if recycled is not None:
                events.append(
                    self._log_change(
                        db, ChangeType.RecycledPatient, None, level, public_id, date, recycled
                    )
                )
            return DeleteOutcome(deleted, remaining, files, events)

    @staticmethod
    def _levels_of(db: sqlite3.Connection, ids: list[int]) -> list[tuple[Level, str]]:
        out: list[tuple[Level, str]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            out += [
                (Level(r[0]), r[1])
                for r in db.execute(
                    "SELECT level, public_id FROM resources WHERE id IN "
                    f"({','.join('?' * len(chunk))})",
                    chunk,
                )
            ]
        out.sort(key=lambda item: -item[0])
        return out

    def forget_files(self, uuids: Iterable[str]) -> None:
        batch = [(u,) for u in uuids]
        if batch:
            with self._transaction() as db:
                db.executemany("DELETE FROM file_deletions WHERE uuid = ?", batch)

    def pending_file_deletions(self) -> list[str]:
        return [r[0] for r in self._reader.execute("SELECT uuid FROM file_deletions")]

    # -- reads -----------------------------------------------------------------------------
    def lookup(self, public_id: str) -> Resource | None:
        row = self._reader.execute(
            f"{_RESOURCE_QUERY} WHERE r.public_id = ?", (public_id,)
        ).fetchone()
        return _resource(row) if row else None

    def get(self, level: Level, public_id: str) -> Resource | None:
        resource = self.lookup(public_id)
        return resource if resource is not None and resource.level == level else None

    def exists(self, level: Level, public_id: str) -> bool:
        row = self._reader.execute(
            "SELECT 1 FROM resources WHERE public_id = ? AND level = ?", (public_id, int(level))
        ).fetchone()
        return row is not None

    def list_ids(self, level: Level, since: int = 0, limit: int = 0) -> list[str]:
        rows = self._reader.execute(
            "SELECT public_id FROM resources WHERE level = ? ORDER BY id LIMIT ? OFFSET ?",
            (int(level), limit if limit > 0 else -1, max(since, 0)),
        )
        return [r[0] for r in rows]

    def children(self, resource: Resource) -> list[str]:
        rows = self._reader.execute(
            "SELECT public_id FROM resources WHERE parent_id = ? ORDER BY id",
            (resource.internal_id,),
        )
        return [r[0] for r in rows]

    def metadata(self, resource: Resource) -> dict[int, str]:
        rows = self._reader.execute(
            "SELECT type, value FROM metadata WHERE id = ? ORDER BY type", (resource.internal_id,)
        )
        return {r[0]: r[1] for r in rows}

    def attachments(self, resource: Resource) -> dict[int, FileInfo]:
        rows = self._reader.execute(
            f"SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE id = ? ORDER BY content_type",
            (resource.internal_id,),
        )
        return {r[1]: file_info_from_row(r) for r in rows}

    def instance_indexes(self, series: Resource) -> list[str | None]:
        rows = self._reader.execute(
            "SELECT m.value FROM resources r LEFT JOIN metadata m ON m.id = r.id AND m.type = ? "
            "WHERE r.parent_id = ?",
            (int(Metadata.IndexInSeries), series.internal_id),
        )
        return [r[0] for r in rows]

    def is_stable(self, resource: Resource) -> bool:
        row = self._reader.execute(
            "SELECT 1 FROM unstable WHERE id = ?", (resource.internal_id,)
        ).fetchone()
        return row is None

    def next_stable_deadline(self) -> float | None:
        row = self._reader.execute("SELECT MIN(deadline) FROM unstable").fetchone()
        return row[0] if row else None

    def take_stable(self, now: float) -> list[Change]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT r.id, r.level, r.public_id FROM unstable u JOIN resources r ON r.id = u.id "
                "WHERE u.deadline <= ? ORDER BY u.deadline, r.level DESC",
                (now,),
            ).fetchall()
            if not rows:
                return []
            db.executemany("DELETE FROM unstable WHERE id = ?", [(r[0],) for r in rows])
            date = now_iso()
            return [
                self._log_change(db, _STABLE_CHANGE[Level(level)], rid, Level(level), pid, date)
                for rid, level, pid in rows
            ]

    def recycling_candidates(self, exclude: Iterable[str], limit: int) -> list[Resource]:
        excluded = list(exclude)
        marks = ",".join("?" * len(excluded)) or "''"
        rows = self._reader.execute(
            f"{_RESOURCE_QUERY} JOIN patients pt ON pt.id = r.id WHERE pt.protected = 0 "
            f"AND r.public_id NOT IN ({marks}) ORDER BY pt.recycling_order LIMIT ?",
            (*excluded, limit),
        ).fetchall()
        return [_resource(r) for r in rows]

    def reconstruct_instance(
        self,
        instance: Resource,
        main_tags: Mapping[Level, dict[str, str]],
        instance_metadata: Mapping[int, str],
    ) -> None:
        with self._transaction() as db:
            self._require(db, instance)
            resource_id: int | None = instance.internal_id
            while resource_id is not None:
                level, parent = db.execute(
                    "SELECT level, parent_id FROM resources WHERE id = ?", (resource_id,)
                ).fetchone()
                tags = main_tags.get(Level(level))
                if tags is not None:
                    db.execute(
                        "UPDATE resources SET main_tags = ? WHERE id = ?",
                        (json.dumps(tags, ensure_ascii=False), resource_id),
                    )
                resource_id = parent
            for kind, value in instance_metadata.items():
                db.execute(
                    "INSERT INTO metadata (id, type, value, revision) VALUES (?, ?, ?, 0) "
                    "ON CONFLICT (id, type) DO UPDATE SET value = excluded.value, "
                    "revision = revision + 1",
                    (instance.internal_id, kind, value),
                )

    def expire_stability(self) -> None:
        with self._transaction() as db:
            db.execute("UPDATE unstable SET deadline = 0")

    def set_stable(self, resource: Resource, stable: bool, deadline: float) -> bool:
        with self._transaction() as db:
            self._require(db, resource)
            waiting = db.execute(
                "SELECT 1 FROM unstable WHERE id = ?", (resource.internal_id,)
            ).fetchone()
            if stable:
                if not waiting:
                    return False
                db.execute("DELETE FROM unstable WHERE id = ?", (resource.internal_id,))
                self._log_change(
                    db,
                    _STABLE_CHANGE[resource.level],
                    resource.internal_id,
                    resource.level,
                    resource.public_id,
                    now_iso(),
                )
                return True
            db.execute(
                "INSERT INTO unstable (id, deadline) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET deadline = excluded.deadline",
                (resource.internal_id, deadline),
            )
            return not waiting

    def is_protected(self, patient: Resource) -> bool:
        row = self._reader.execute(
            "SELECT protected FROM patients WHERE id = ?", (patient.internal_id,)
        ).fetchone()
        return bool(row and row[0])

    def totals(self) -> Totals:
        values = dict(self._reader.execute("SELECT key, value FROM globals").fetchall())
        return Totals(
            patients=values["count_0"],
            studies=values["count_1"],
            series=values["count_2"],
            instances=values["count_3"],
            disk_size=values["disk_size"],
            uncompressed_size=values["uncompressed_size"],
            dicom_disk_size=0,
            dicom_uncompressed_size=0,
        )

    def resource_totals(self, resource: Resource) -> Totals:
        db = self._reader
        with self._snapshot(db):
            subtree = self._descendants(db, resource.internal_id)
            counts = [0, 0, 0, 0]
            sizes = [0, 0, 0, 0]
            for start in range(0, len(subtree), 500):
                chunk = subtree[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for level, n in db.execute(
                    f"SELECT level, COUNT(*) FROM resources WHERE id IN ({marks}) GROUP BY level",
                    chunk,
                ):
                    counts[level] += n
                row = db.execute(
                    "SELECT COALESCE(SUM(compressed_size), 0), COALESCE(SUM(uncompressed_size), 0),"
                    " COALESCE(SUM(CASE WHEN content_type = ? THEN compressed_size END), 0),"
                    " COALESCE(SUM(CASE WHEN content_type = ? THEN uncompressed_size END), 0)"
                    f" FROM attachments WHERE id IN ({marks})",
                    [int(ContentType.Dicom), int(ContentType.Dicom), *chunk],
                ).fetchone()
                sizes = [a + b for a, b in zip(sizes, row, strict=True)]
        return Totals(counts[0], counts[1], counts[2], counts[3], *sizes)

    def known_files(self, uuids: list[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(uuids), 500):
            chunk = uuids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            known.update(
                r[0]
                for r in self._reader.execute(
                    f"SELECT uuid FROM attachments WHERE uuid IN ({marks})", chunk
                )
            )
        return known
