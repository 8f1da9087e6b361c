"""The SQLite index's jobs and run-time peer definitions."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from ..domain.model import Change, ChangeType, JobRecord, job_event, now_iso
from .sqlite_db import SQLiteDatabase

_JOB_COLUMNS = "id, type, state, priority, created, completed, next_attempt, control, data"


def _job(row: tuple) -> JobRecord:
    return JobRecord(
        id=row[0],
        type=row[1],
        state=row[2],
        priority=row[3],
        created=row[4],
        completed=row[5],
        next_attempt=row[6],
        control=row[7],
        data=json.loads(row[8]),
    )


class SQLiteJobs(SQLiteDatabase):
    # -- peers -----------------------------------------------------------------------------
    def peer_overrides(self) -> dict[str, dict[str, Any] | None]:
        rows = self._reader.execute("SELECT name, definition FROM peers").fetchall()
        return {name: json.loads(d) if d is not None else None for name, d in rows}

    def save_peer(self, name: str, definition: dict[str, Any] | None) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO peers (name, definition) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET definition = excluded.definition",
                (name, json.dumps(definition) if definition is not None else None),
            )

    # -- jobs ------------------------------------------------------------------------------
    def create_job(self, job: JobRecord, instances: list[str]) -> Change:
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO jobs ({_JOB_COLUMNS}, instances) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*self._job_values(job), json.dumps(instances)),
            )
            return self._log_job(db, ChangeType.JobSubmitted, job.id)

    def job_instances(self, job_id: str) -> list[str]:
        row = self._reader.execute("SELECT instances FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row else []

    def job_control(self, job_id: str) -> str | None:
        """A pause or cancel asked while the job runs ("cancel" if the job is gone)."""
        row = self._reader.execute("SELECT control FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row[0] if row else "cancel"

    @staticmethod
    def _job_values(job: JobRecord) -> tuple[Any, ...]:
        return (
            job.id,
            job.type,
            job.state,
            job.priority,
            job.created,
            job.completed,
            job.next_attempt,
            job.control,
            json.dumps(job.data),
        )

    def save_job(self, job: JobRecord) -> Change | None:
        """Update a job's state (its list of instances is written once, at creation), and
        log the event of the move from its saved state, if any."""
        with self._transaction() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job.id,)).fetchone()
            db.execute(
                "UPDATE jobs SET type = ?, state = ?, priority = ?, created = ?, completed = ?, "
                "next_attempt = ?, control = ?, data = ? WHERE id = ?",
                (*self._job_values(job)[1:], job.id),
            )
            event = job_event(row[0], job.state) if row else None
            return self._log_job(db, event, job.id) if event is not None else None

    @classmethod
    def _log_job(cls, db: sqlite3.Connection, event: ChangeType, job_id: str) -> Change:
        return cls._log_change(db, event, None, None, job_id, now_iso())

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._reader.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return _job(row) if row else None

    def list_jobs(self) -> list[JobRecord]:
        rows = self._reader.execute(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY created")
        return [_job(r) for r in rows]

    def claim_job(self, now: float, skip_peers: Iterable[str]) -> JobRecord | None:
        """Take the most urgent job that is due (not for a peer in ``skip_peers``) and
        mark it Running, in one transaction, so that two workers never take the same."""
        skipped = set(skip_peers)
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state IN ('Pending', 'Retry') "
                "AND next_attempt <= ? ORDER BY priority DESC, created LIMIT 50",
                (now,),
            ).fetchall()
            for row in rows:
                job = _job(row)
                if job.data.get("Peer") in skipped:
                    continue
                db.execute("UPDATE jobs SET state = 'Running' WHERE id = ?", (job.id,))
                job.state = "Running"
                return job
        return None

    def set_job_control(self, job_id: str, control: str | None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET control = ? WHERE id = ?", (control, job_id))

    def delete_job(self, job_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def requeue_running_jobs(self) -> int:
        """At start: jobs a dead process was running go back to the queue."""
        with self._transaction() as db:
            return db.execute(
                "UPDATE jobs SET state = 'Pending', control = NULL WHERE state = 'Running'"
            ).rowcount

    def trim_job_history(self, keep: int) -> None:
        """Keep the ``keep`` latest successful jobs; failed ones stay until deleted."""
        with self._transaction() as db:
            db.execute(
                "DELETE FROM jobs WHERE state = 'Success' AND id NOT IN (SELECT id FROM jobs "
                "WHERE state = 'Success' ORDER BY completed DESC LIMIT ?)",
                (keep,),
            )
