"""The log of exported resources (Orthanc's ``/exports``): what was sent to which modality
or peer, for traceability. Written only with ``LogExportedResources``, as in Orthanc, once
per resource named in a store request (not per instance sent)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..config import Config
from ..storage.index import ExportEntry, Index
from .model import Level, Resource, now_iso

# As for /changes: a page has at most 100 entries, and a limit of 0 means that cap.
MAX_PAGE = 100

_IDENTIFIERS = (
    (Level.INSTANCE, "SOPInstanceUID", "sop_uid"),
    (Level.SERIES, "SeriesInstanceUID", "series_uid"),
    (Level.STUDY, "StudyInstanceUID", "study_uid"),
    (Level.PATIENT, "PatientID", "patient_id"),
)


def export_json(entry: ExportEntry) -> dict[str, Any]:
    """One entry as Orthanc shows it: the identifiers of the resource's level and above."""
    item: dict[str, Any] = {
        "Seq": entry.seq,
        "ResourceType": entry.level.title,
        "ID": entry.public_id,
        "Path": f"/{entry.level.plural}/{entry.public_id}",
        "RemoteModality": entry.remote,
        "Date": entry.date,
    }
    for level, key, field_name in _IDENTIFIERS:
        if entry.level >= level:
            item[key] = getattr(entry, field_name)
    return item


class ExportLog:
    def __init__(self, config: Config, index: Index) -> None:
        self._enabled = config.log_exported_resources
        self._index = index

    def log(self, public_ids: Iterable[str], remote: str) -> None:
        """Record that the resources ``public_ids`` (of any level) were asked to be sent to
        ``remote`` (a modality's or peer's name); nothing unless ``LogExportedResources``
        is on. IDs no longer known are skipped."""
        if not self._enabled:
            return
        resources: list[Resource] = []
        for public_id in public_ids:
            resource = self._index.lookup(public_id.strip())
            if resource is not None:
                resources.append(resource)
        if resources:
            self._index.log_exports(resources, remote, now_iso())

    def page(self, since: int, limit: int) -> dict[str, Any]:
        if limit <= 0 or limit > MAX_PAGE:
            limit = MAX_PAGE
        entries, done = self._index.exports(since, limit)
        return self._answer(entries, done, since)

    def last(self) -> dict[str, Any]:
        entry = self._index.last_export()
        return self._answer([entry] if entry else [], True, 0)

    @staticmethod
    def _answer(entries: list[ExportEntry], done: bool, since: int) -> dict[str, Any]:
        return {
            "Exports": [export_json(e) for e in entries],
            "Done": done,
            "Last": entries[-1].seq if entries else since,
        }

    def clear(self) -> None:
        self._index.clear_exports()
