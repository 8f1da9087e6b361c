"""The plumbing of the SQLite index: connections, transactions, and the helpers every part
of the index writes with.

One connection writes (writes are serialised by SQLite anyway); every other thread reads
through its own connection, so readers never wait for the writer. ``synchronous=NORMAL`` in
WAL mode keeps every committed transaction across a process crash (``kill -9``); only a power
failure may lose the last transactions, never the database's consistency.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources as package_files
from pathlib import Path
from typing import Any

from ..errors import UnknownResource
from ..model import Change, ChangeType, Level, Resource
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


class SQLiteDatabase:
    """The index's SQLite file under ``IndexDirectory``, with one writer and a reader per
    thread."""

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
