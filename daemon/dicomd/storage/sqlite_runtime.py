"""The SQLite index's run-time settings and the log of exported resources."""

from __future__ import annotations

import json
from collections.abc import Iterable

from ..domain.model import Level, Resource
from .index import ExportEntry
from .sqlite_db import SQLiteDatabase

_EXPORT_COLUMNS = "seq, level, public_id, remote, date, patient_id, study_uid, series_uid, sop_uid"
# The identifying tag each level contributes to an export entry.
_IDENTIFIER = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.INSTANCE: "SOPInstanceUID",
}


def _export(row: tuple) -> ExportEntry:
    return ExportEntry(row[0], Level(row[1]), *row[2:])


class SQLiteRuntime(SQLiteDatabase):
    def runtime_settings(self) -> dict[str, str]:
        return dict(self._reader.execute("SELECT key, value FROM runtime_settings").fetchall())

    def set_runtime_setting(self, key: str, value: str | None) -> None:
        with self._transaction() as db:
            if value is None:
                db.execute("DELETE FROM runtime_settings WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT INTO runtime_settings (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def clear_runtime_settings(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM runtime_settings")

    def log_exports(self, resources: Iterable[Resource], remote: str, date: str) -> None:
        with self._transaction() as db:
            for resource in resources:
                tags = {level: "" for level in _IDENTIFIER}
                row_id: int | None = resource.internal_id
                level = resource.level
                while row_id is not None:
                    row = db.execute(
                        "SELECT parent_id, main_tags FROM resources WHERE id = ?", (row_id,)
                    ).fetchone()
                    if row is None:
                        break
                    main_tags = json.loads(row[1]) if row[1] else {}
                    tags[level] = str(main_tags.get(_IDENTIFIER[level], ""))
                    row_id = row[0]
                    if level == Level.PATIENT:
                        break
                    level = Level(level - 1)
                db.execute(
                    f"INSERT INTO exports ({_EXPORT_COLUMNS}) VALUES "
                    "(NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        int(resource.level),
                        resource.public_id,
                        remote,
                        date,
                        tags[Level.PATIENT],
                        tags[Level.STUDY],
                        tags[Level.SERIES],
                        tags[Level.INSTANCE],
                    ),
                )

    def exports(self, since: int, limit: int) -> tuple[list[ExportEntry], bool]:
        rows = self._reader.execute(
            f"SELECT {_EXPORT_COLUMNS} FROM exports WHERE seq > ? ORDER BY seq LIMIT ?",
            (since, limit + 1),
        ).fetchall()
        return [_export(r) for r in rows[:limit]], len(rows) <= limit

    def last_export(self) -> ExportEntry | None:
        row = self._reader.execute(
            f"SELECT {_EXPORT_COLUMNS} FROM exports ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return _export(row) if row else None

    def clear_exports(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM exports")
