"""The embedded index backend: SQLite in WAL mode.

One connection writes (writes are serialised by SQLite anyway); every other thread reads
through its own connection, so readers never wait for the writer. ``synchronous=NORMAL`` in
WAL mode keeps every committed transaction across a process crash (``kill -9``); only a power
failure may lose the last transactions, never the database's consistency.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import resources as package_files
from pathlib import Path

from ..errors import UnknownResource
from ..model import (
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
from .index import DeleteOutcome, Index, RevisionCheck, Totals
from .lock import FileLock
from .store import FileInfo

_RESOURCE_COLUMNS = "r.id, r.level, r.public_id, p.public_id, r.main_tags"
_RESOURCE_QUERY = (
    f"SELECT {_RESOURCE_COLUMNS} FROM resources r LEFT JOIN resources p ON p.id = r.parent_id"
)
_ATTACHMENT_COLUMNS = (
    "uuid, content_type, compression, uncompressed_size, compressed_size, "
    "uncompressed_md5, compressed_md5"
)
_CHANGE_COLUMNS = "seq, change_type, level, public_id, date"
_NEW_LEVEL_CHANGE = {
    Level.SERIES: ChangeType.NewSeries,
    Level.STUDY: ChangeType.NewStudy,
    Level.PATIENT: ChangeType.NewPatient,
}


def _recycling_order(seq: int, after: bool = False) -> int:
    """A patient's place in the recycling order: twice the Seq of its latest NewInstance,
    or, when it is unprotected, one more than twice the latest Seq, so that it comes after
    every patient stored so far and before the next one."""
    return 2 * seq + (1 if after else 0)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _change(row: tuple) -> Change:
    return Change(row[0], ChangeType(row[1]), Level(row[2]), row[3], row[4])


def _resource(row: tuple) -> Resource:
    return Resource(row[0], Level(row[1]), row[2], row[3], json.loads(row[4]))


def _file_info(row: tuple) -> FileInfo:
    return FileInfo(*row)


class SQLiteIndex(Index):
    """The index in one SQLite file under ``IndexDirectory``."""

    FILE_NAME = "dicomd-index.sqlite"

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / self.FILE_NAME
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._process_lock = FileLock(directory / (self.FILE_NAME + ".writelock"))
        self._writer = self._connect()
        schema = package_files.files(__package__).joinpath("sqlite_schema.sql").read_text()
        with self._write_lock:
            self._process_lock.exclusive()
            try:
                self._writer.executescript(schema)
            finally:
                self._process_lock.release()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._write_lock:
            self._writer.close()
            self._process_lock.close()

    @property
    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # Writers of every process of the daemon queue on a file lock, which wakes the next
        # one at once, rather than on SQLite's busy handler, which sleeps and retries.
        with self._write_lock:
            self._process_lock.exclusive()
            try:
                conn = self._writer
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                self._process_lock.release()

    # -- writes ----------------------------------------------------------------------------
    def store_instance(self, record: InstanceRecord) -> StoreOutcome:
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
            db.executemany(
                "INSERT INTO metadata (id, type, value) VALUES (?, ?, ?) "
                "ON CONFLICT (id, type) DO UPDATE SET value = excluded.value",
                metadata,
            )
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
            # Storing any instance of a patient moves it to the end of the recycling order,
            # which the change log's sequence number gives (see _recycling_order).
            db.execute(
                "INSERT INTO patients (id, recycling_order) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET recycling_order = excluded.recycling_order",
                (row_ids[Level.PATIENT], _recycling_order(changes[0].seq)),
            )
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
    def _insert_attachments(
        db: sqlite3.Connection, resource_id: int, files: list[FileInfo], revision: int = 0
    ) -> None:
        db.executemany(
            "INSERT INTO attachments (id, content_type, uuid, compression, uncompressed_size, "
            "compressed_size, uncompressed_md5, compressed_md5, revision) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    resource_id,
                    f.content_type,
                    f.uuid,
                    f.compression,
                    f.uncompressed_size,
                    f.compressed_size,
                    f.uncompressed_md5,
                    f.compressed_md5,
                    revision,
                )
                for f in files
            ],
        )

    @staticmethod
    def _log_change(
        db: sqlite3.Connection,
        change_type: ChangeType,
        resource_id: int,
        level: Level,
        public_id: str,
        date: str,
    ) -> Change:
        cur = db.execute(
            "INSERT INTO changes (change_type, resource_id, level, public_id, date) "
            "VALUES (?, ?, ?, ?, ?)",
            (int(change_type), resource_id, int(level), public_id, date),
        )
        assert cur.lastrowid is not None
        return Change(cur.lastrowid, change_type, level, public_id, date)

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

    def delete_resource(self, level: Level, public_id: str) -> DeleteOutcome | None:
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
            return DeleteOutcome(deleted=deleted, remaining_ancestor=remaining, files=files)

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

    # -- metadata, attachments, protection, change log -------------------------------------
    @staticmethod
    def _require(db: sqlite3.Connection, resource: Resource) -> None:
        if not db.execute(
            "SELECT 1 FROM resources WHERE id = ?", (resource.internal_id,)
        ).fetchone():
            raise UnknownResource(f"Unknown {resource.level.title.lower()}: {resource.public_id}")

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
            self._require(db, resource)
            row = db.execute(
                "SELECT value, revision FROM metadata WHERE id = ? AND type = ?",
                (resource.internal_id, kind),
            ).fetchone()
            check((row[1], _md5(row[0])) if row else None)
            revision = row[1] + 1 if row else 0
            db.execute(
                "INSERT INTO metadata (id, type, value, revision) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id, type) DO UPDATE SET value = excluded.value, "
                "revision = excluded.revision",
                (resource.internal_id, kind, value, revision),
            )
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
            f"SELECT {_ATTACHMENT_COLUMNS}, revision FROM attachments "
            "WHERE id = ? AND content_type = ?",
            (resource.internal_id, content_type),
        ).fetchone()
        return (_file_info(row[:-1]), row[-1]) if row else None

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
                    (_recycling_order(self._last_seq(db), after=True), patient.internal_id),
                )

    def clear_changes(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM changes")

    @staticmethod
    def _last_seq(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return int(row[0]) if row else 0

    # -- reads -----------------------------------------------------------------------------
    def lookup(self, public_id: str) -> Resource | None:
        row = self._reader.execute(
            f"{_RESOURCE_QUERY} WHERE r.public_id = ?", (public_id,)
        ).fetchone()
        return _resource(row) if row else None

    def get(self, level: Level, public_id: str) -> Resource | None:
        resource = self.lookup(public_id)
        return resource if resource is not None and resource.level == level else None

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
            f"SELECT {_ATTACHMENT_COLUMNS} FROM attachments WHERE id = ? ORDER BY content_type",
            (resource.internal_id,),
        )
        return {r[1]: _file_info(r) for r in rows}

    def instance_indexes(self, series: Resource) -> list[str | None]:
        rows = self._reader.execute(
            "SELECT m.value FROM resources r LEFT JOIN metadata m ON m.id = r.id AND m.type = ? "
            "WHERE r.parent_id = ?",
            (int(Metadata.IndexInSeries), series.internal_id),
        )
        return [r[0] for r in rows]

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

    def changes(self, since: int, limit: int) -> tuple[list[Change], bool]:
        rows = self._reader.execute(
            f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (since, limit + 1),
        ).fetchall()
        return [_change(r) for r in rows[:limit]], len(rows) <= limit

    def last_change(self) -> Change | None:
        row = self._reader.execute(
            f"SELECT {_CHANGE_COLUMNS} FROM changes ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return _change(row) if row else None

    def last_change_seq(self) -> int:
        return self._last_seq(self._reader)

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

    @staticmethod
    @contextmanager
    def _snapshot(db: sqlite3.Connection) -> Iterator[None]:
        """A read transaction, so that several queries see the same state."""
        db.execute("BEGIN")
        try:
            yield
        finally:
            db.execute("COMMIT")

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
