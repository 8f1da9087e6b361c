"""The plumbing of the SQLite index: connections, transactions, and the helpers every part
of the index writes with.

One connection writes (writes are serialised by SQLite anyway); every other thread reads
through its own connection, so readers never wait for the writer. ``synchronous=NORMAL`` in
WAL mode keeps every committed transaction across a process crash (``kill -9``); only a power
failure may lose the last transactions, never the database's consistency.

Opened ``read_only`` (``dicomd replay --dry-run``), the index writes nothing at all: no schema
set-up, no lock file, and SQLite opens the file ``immutable``, so that it neither creates the
``-wal`` and ``-shm`` files nor checkpoints on close; every byte of the folder stays as it was.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources as package_files
from pathlib import Path
from typing import Any

from ..domain.model import Change, ChangeType, Level, Resource
from ..errors import ReadOnlyIndex, UnknownResource
from .lock import FileLock
from .store import FileInfo

ATTACHMENT_COLUMNS = (
    "uuid, content_type, compression, uncompressed_size, compressed_size, "
    "uncompressed_md5, compressed_md5"
)
CHANGE_COLUMNS = "seq, change_type, level, public_id, date, payload"


def change_from_row(row: tuple) -> Change:
    payload = json.loads(row[5]) if row[5] else None
    level = Level(row[2]) if row[2] is not None else None
    return Change(row[0], ChangeType(row[1]), level, row[3], row[4], payload)


def file_info_from_row(row: tuple) -> FileInfo:
    return FileInfo(*row)


# Columns that an index made by an earlier version declared NOT NULL and that may now be
# NULL: the level of job events (which concern no resource).
_NOW_NULLABLE = (("changes", "level"), ("handler_failures", "level"))


def _add_log_seq(db: sqlite3.Connection) -> None:
    """An index made before /changes numbered its own changes: the logged changes keep
    their sequence number as their log number, and numbering goes on from the last one."""
    columns = [row[1] for row in db.execute("PRAGMA table_info(changes)").fetchall()]
    if not columns or "log_seq" in columns:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE changes ADD COLUMN log_seq INTEGER")
        db.execute("UPDATE changes SET log_seq = seq WHERE in_log = 1")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _upgrade(db: sqlite3.Connection, schema: str) -> None:
    """Bring an index made by an earlier version to the current schema, in one transaction.
    SQLite cannot drop a NOT NULL constraint, so such a table is rebuilt with the current
    definition and its rows copied (its AUTOINCREMENT counter too)."""
    stale = [
        table
        for table, column in _NOW_NULLABLE
        if any(
            row[1] == column and row[3]
            for row in db.execute(f"PRAGMA table_info({table})").fetchall()
        )
    ]
    if not stale:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for table in stale:
            create = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \(.*?\);", schema, re.S)
            assert create is not None, table
            counter = db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)
            ).fetchone()
            db.execute(f"ALTER TABLE {table} RENAME TO {table}_before_upgrade")
            db.execute(create.group(0))
            columns = ", ".join(
                row[1]
                for row in db.execute(f"PRAGMA table_info({table}_before_upgrade)").fetchall()
            )
            db.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_before_upgrade"
            )
            db.execute(f"DROP TABLE {table}_before_upgrade")  # and its indexes
            if counter is not None:
                db.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
                db.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, counter[0])
                )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class SQLiteDatabase:
    """The index's SQLite file under ``IndexDirectory``, with one writer and a reader per
    thread."""

    FILE_NAME = "dicomd-index.sqlite"

    def __init__(self, directory: Path, read_only: bool = False) -> None:
        """``read_only``: only for a caller that holds the daemon's storage lock, so that
        nothing else writes meanwhile (SQLite then trusts the file not to change)."""
        self.path = directory / self.FILE_NAME
        self.read_only = read_only
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._process_lock: FileLock | None = None
        if read_only:
            self._check_closed_cleanly()
            self._writer = self._connect()
            return
        directory.mkdir(parents=True, exist_ok=True)
        self._process_lock = lock = FileLock(directory / (self.FILE_NAME + ".writelock"))
        self._writer = self._connect()
        schema = package_files.files(__package__).joinpath("sqlite_schema.sql").read_text()
        with self._write_lock:
            lock.exclusive()
            try:
                _add_log_seq(self._writer)
                _upgrade(self._writer, schema)
                self._writer.executescript(schema)
            finally:
                lock.release()

    def _check_closed_cleanly(self) -> None:
        """An immutable connection ignores the write-ahead log, so it would miss what a
        killed daemon committed there; reading the log would make SQLite write ``-shm``."""
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            raise ReadOnlyIndex(
                f"the index {self.path} was not closed cleanly (dicomd was killed?), so it "
                "cannot be read without writing: start dicomd and stop it once"
            )

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            uri = self.path.absolute().as_uri() + "?mode=ro&immutable=1"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
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
            if self._process_lock is not None:
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
        lock = self._process_lock
        if lock is None:
            raise ReadOnlyIndex("the index is open read-only (a dry run): nothing may change")
        # Writers of every process of the daemon queue on a file lock, which wakes the next
        # one at once, rather than on SQLite's busy handler, which sleeps and retries.
        with self._write_lock:
            lock.exclusive()
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
                lock.release()

    @staticmethod
    @contextmanager
    def _snapshot(db: sqlite3.Connection) -> Iterator[None]:
        """A read transaction, so that several queries see the same state."""
        db.execute("BEGIN")
        try:
            yield
        finally:
            db.execute("COMMIT")

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
        resource_id: int | None,
        level: Level | None,
        public_id: str,
        date: str,
        payload: dict[str, Any] | None = None,
    ) -> Change:
        cur = db.execute(
            "INSERT INTO changes (change_type, resource_id, level, public_id, date, in_log, "
            "payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                int(change_type),
                resource_id,
                int(level) if level is not None else None,
                public_id,
                date,
                int(change_type.in_log),
                json.dumps(payload) if payload is not None else None,
            ),
        )
        assert cur.lastrowid is not None
        # Change checks that only job events have no level; raising here rolls back.
        return Change(cur.lastrowid, change_type, level, public_id, date, payload)

    @staticmethod
    def _require(db: sqlite3.Connection, resource: Resource) -> None:
        if not db.execute(
            "SELECT 1 FROM resources WHERE id = ?", (resource.internal_id,)
        ).fetchone():
            raise UnknownResource(f"Unknown {resource.level.title.lower()}: {resource.public_id}")

    @staticmethod
    def _last_seq(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return int(row[0]) if row else 0
