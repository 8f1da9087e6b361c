"""An index made by an earlier version opens with the current schema, its rows kept."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from dicomd.domain.model import ChangeType, JobRecord
from dicomd.storage.sqlite_db import SQLiteDatabase
from dicomd.storage.sqlite_index import SQLiteIndex

# The two tables as the previous release declared them: every change had a level.
EARLIER = """
CREATE TABLE changes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    change_type  INTEGER NOT NULL,
    resource_id  INTEGER REFERENCES resources(id) ON DELETE CASCADE,
    level        INTEGER NOT NULL,
    public_id    TEXT    NOT NULL,
    date         TEXT    NOT NULL,
    in_log       INTEGER NOT NULL DEFAULT 1,
    payload      TEXT
);
CREATE INDEX changes_resource ON changes(resource_id);
CREATE TABLE handler_failures (
    id           INTEGER PRIMARY KEY,
    handler      TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    change_type  INTEGER NOT NULL,
    level        INTEGER NOT NULL,
    public_id    TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    error        TEXT    NOT NULL,
    date         TEXT    NOT NULL
);
"""


def test_an_earlier_index_is_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    SQLiteIndex(tmp_path).close()
    db = sqlite3.connect(tmp_path / SQLiteDatabase.FILE_NAME)
    db.executescript("DROP TABLE changes; DROP TABLE handler_failures;" + EARLIER)
    for seq in range(1, 6):
        db.execute(
            "INSERT INTO changes (seq, change_type, level, public_id, date, in_log) "
            "VALUES (?, 4096, 3, ?, '20261201T000000', 0)",
            (seq, f"gone-{seq}"),
        )
    db.execute("DELETE FROM changes WHERE seq > 3")  # the counter stays at 5
    db.execute(
        "INSERT INTO handler_failures (handler, seq, change_type, level, public_id, attempts, "
        "error, date) VALUES ('lua', 2, 4096, 3, 'gone-2', 3, 'boom', '20261201T000000')"
    )
    db.commit()
    db.close()

    index = SQLiteIndex(tmp_path)
    try:
        assert [c.public_id for c in index.events_after(0, 10)] == ["gone-1", "gone-2", "gone-3"]
        assert index.last_change_seq() == 5
        (failure,) = index.handler_failures(0, 10)
        assert (failure.handler, failure.change.public_id, failure.error) == (
            "lua",
            "gone-2",
            "boom",
        )
        # What the earlier schema refused: an event that concerns no resource.
        job = JobRecord("job-1", "PeerStore", "Pending", 0, time.time(), {})
        assert index.create_job(job, []).seq == 6
        (job_event,) = index.events_after(5, 10)
        assert (job_event.change_type, job_event.level, job_event.public_id) == (
            ChangeType.JobSubmitted,
            None,
            "job-1",
        )
    finally:
        index.close()
    # Opening it again finds nothing to upgrade.
    SQLiteIndex(tmp_path).close()
