"""The SQLite index's change log, read as Orthanc's ``/changes`` and as the event log that
handlers are fed from, with each handler's position and the events it gave up on."""

from __future__ import annotations

from collections.abc import Mapping

from ..domain.model import Change, now_iso
from .index import HandlerFailure
from .sqlite_db import CHANGE_COLUMNS, SQLiteDatabase, change_from_row

# A change as /changes shows it: numbered among the logged changes (log_seq).
_LOG_COLUMNS = CHANGE_COLUMNS.replace("seq,", "log_seq,", 1)


class SQLiteEvents(SQLiteDatabase):
    # -- Orthanc's change log (/changes) ---------------------------------------------------
    def changes(self, since: int, limit: int) -> tuple[list[Change], bool]:
        rows = self._reader.execute(
            f"SELECT {_LOG_COLUMNS} FROM changes WHERE log_seq > ? AND in_log = 1 "
            "ORDER BY log_seq LIMIT ?",
            (since, limit + 1),
        ).fetchall()
        return [change_from_row(r) for r in rows[:limit]], len(rows) <= limit

    def last_change(self) -> Change | None:
        row = self._reader.execute(
            f"SELECT {_LOG_COLUMNS} FROM changes WHERE in_log = 1 ORDER BY log_seq DESC LIMIT 1"
        ).fetchone()
        return change_from_row(row) if row else None

    def last_change_seq(self) -> int:
        return self._last_seq(self._reader)

    def last_logged_seq(self) -> int:
        row = self._reader.execute(
            "SELECT value FROM globals WHERE key = 'last_logged_seq'"
        ).fetchone()
        return int(row[0]) if row else 0

    def clear_changes(self) -> None:
        # Hidden, not deleted: handlers may not have seen them yet (see prune_events).
        with self._transaction() as db:
            db.execute("UPDATE changes SET in_log = 0 WHERE in_log = 1")

    # -- the event log ---------------------------------------------------------------------
    def events_after(self, seq: int, limit: int) -> list[Change]:
        rows = self._reader.execute(
            f"SELECT {CHANGE_COLUMNS} FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [change_from_row(r) for r in rows]

    def handler_positions(self) -> dict[str, int]:
        return dict(self._reader.execute("SELECT name, seq FROM handler_positions").fetchall())

    def save_handler_positions(self, positions: Mapping[str, int]) -> None:
        if positions:
            with self._transaction() as db:
                db.executemany(
                    "INSERT INTO handler_positions (name, seq) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                    list(positions.items()),
                )

    def record_failure(self, failure: HandlerFailure) -> None:
        level = failure.change.level
        with self._transaction() as db:
            db.execute(
                "INSERT INTO handler_failures (handler, seq, change_type, level, public_id, "
                "attempts, error, date) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    failure.handler,
                    failure.change.seq,
                    int(failure.change.change_type),
                    int(level) if level is not None else None,
                    failure.change.public_id,
                    failure.attempts,
                    failure.error,
                    failure.date or now_iso(),
                ),
            )

    def handler_failures(self, since: int = 0, limit: int = 100) -> list[HandlerFailure]:
        rows = self._reader.execute(
            "SELECT f.id, f.handler, f.seq, f.change_type, f.level, f.public_id, f.attempts, "
            "f.error, f.date FROM handler_failures f WHERE f.id > ? ORDER BY f.id LIMIT ?",
            (since, limit),
        ).fetchall()
        return [
            HandlerFailure(
                handler=r[1],
                change=change_from_row((r[2], r[3], r[4], r[5], r[8], None)),
                attempts=r[6],
                error=r[7],
                date=r[8],
                id=r[0],
            )
            for r in rows
        ]

    def handler_failure_counts(self) -> dict[str, int]:
        return dict(
            self._reader.execute(
                "SELECT handler, COUNT(*) FROM handler_failures GROUP BY handler"
            ).fetchall()
        )

    def prune_events(self, delivered: int) -> int:
        """Delete hidden events every handler has seen (``seq <= delivered``)."""
        with self._transaction() as db:
            cur = db.execute("DELETE FROM changes WHERE in_log = 0 AND seq <= ?", (delivered,))
            return cur.rowcount
