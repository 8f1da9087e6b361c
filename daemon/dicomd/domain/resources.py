"""The resource service: Orthanc's JSON views of patients, studies, series and instances,
their files and tags, statistics and deletion. REST views and scripts call this one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import BadRequest, UnknownResource
from ..storage.index import Index, Totals
from ..storage.store import FileInfo, FileStore
from .content import ContentService
from .dicomjson import DEFAULT_ENCODING
from .dictionary import DicomDictionary, default_dictionary
from .model import ContentType, Level, Metadata, Resource, series_status

MEGABYTE = 1024 * 1024


def _size_fields(prefix: str, size: int) -> dict[str, Any]:
    # Orthanc gives sizes as strings (they may exceed 2^53) plus whole megabytes.
    return {prefix: str(size), f"{prefix}MB": size // MEGABYTE}


class ResourceService:
    """Reads and deletes resources, answering in Orthanc's JSON shapes."""

    def __init__(
        self,
        index: Index,
        store: FileStore,
        encoding: Callable[[], str] | None = None,
        dictionary: DicomDictionary | None = None,
    ) -> None:
        self.index = index
        self.store = store
        # The default encoding (of files without SpecificCharacterSet), which may change.
        self.encoding = encoding or (lambda: DEFAULT_ENCODING)
        # What the DICOM files say (tags, raw content, frames).
        self.content = ContentService(self, dictionary or default_dictionary())

    # -- lookups ---------------------------------------------------------------------------
    def get(self, level: Level, public_id: str) -> Resource:
        resource = self.index.get(level, public_id)
        if resource is None:
            raise UnknownResource(f"Unknown {level.title.lower()}: {public_id}")
        return resource

    def list_resources(
        self, level: Level, *, expand: bool, since: int | None, limit: int | None
    ) -> list[Any]:
        """``GET /patients`` and friends; ``since``/``limit`` page in insertion order."""
        if (since is None) != (limit is None):
            missing = "since" if since is None else "limit"
            raise BadRequest(
                f'Missing "{missing}" argument for GET request against: /{level.plural}/'
            )
        ids = self.index.list_ids(level, since or 0, limit or 0)
        if not expand:
            return ids
        return [self.describe(r) for r in self._resolve(level, ids)]

    def _resolve(self, level: Level, ids: list[str]) -> list[Resource]:
        # A resource deleted between the listing and the expansion is skipped.
        return [r for r in (self.index.get(level, i) for i in ids) if r is not None]

    def children(self, level: Level, public_id: str, child_level: Level, expand: bool) -> list[Any]:
        """``GET /patients/{id}/instances`` and the like: descendants at ``child_level``."""
        current = [self.get(level, public_id)]
        for _ in range(child_level - level):
            current = [
                child
                for parent in current
                for child in self._resolve(Level(parent.level + 1), self.index.children(parent))
            ]
        return [self.describe(r) for r in current] if expand else [r.public_id for r in current]

    def parent(self, level: Level, public_id: str, parent_level: Level) -> dict[str, Any]:
        """``GET /instances/{id}/patient`` and the like."""
        resource = self.get(level, public_id)
        while resource.level > parent_level:
            assert resource.parent_public_id is not None
            resource = self.get(Level(resource.level - 1), resource.parent_public_id)
        return self.describe(resource)

    # -- the resource JSON -----------------------------------------------------------------
    def describe(self, resource: Resource) -> dict[str, Any]:
        """Orthanc's JSON for one resource (``GET /{level}/{id}``)."""
        level = resource.level
        out: dict[str, Any] = {
            "ID": resource.public_id,
            "Type": level.title,
            "MainDicomTags": resource.main_tags,
        }
        metadata = self.index.metadata(resource)
        if level is Level.INSTANCE:
            dicom = self.index.attachments(resource).get(ContentType.Dicom)
            out["FileSize"] = dicom.uncompressed_size if dicom else 0
            out["FileUuid"] = dicom.uuid if dicom else None
            out["IndexInSeries"] = _int_or_none(metadata.get(Metadata.IndexInSeries))
            out["ParentSeries"] = resource.parent_public_id
            return out

        out[level.children_key] = self.index.children(resource)
        last_update = metadata.get(Metadata.LastUpdate)
        if last_update is not None:
            out["LastUpdate"] = last_update
        out["IsStable"] = self.index.is_stable(resource)
        if level is Level.PATIENT:
            out["IsProtected"] = self.index.is_protected(resource)
        elif level is Level.STUDY:
            out["ParentPatient"] = resource.parent_public_id
            assert resource.parent_public_id is not None
            patient = self.index.get(Level.PATIENT, resource.parent_public_id)
            out["PatientMainDicomTags"] = patient.main_tags if patient else {}
        else:
            out["ParentStudy"] = resource.parent_public_id
            expected = _int_or_none(metadata.get(Metadata.ExpectedNumberOfInstances))
            out["ExpectedNumberOfInstances"] = expected
            out["Status"] = self._series_status(resource, expected)
        return out

    def _series_status(self, series: Resource, expected: int | None) -> str:
        if not expected:
            return "Unknown"
        return series_status(expected, self.index.instance_indexes(series))

    # -- protection ------------------------------------------------------------------------
    def _patient(self, public_id: str) -> Resource:
        patient = self.index.get(Level.PATIENT, public_id)
        if patient is None:
            raise UnknownResource(f"Unknown patient: {public_id}", empty_body=False)
        return patient

    def is_protected(self, public_id: str) -> bool:
        return self.index.is_protected(self._patient(public_id))

    def set_protected(self, public_id: str, protected: bool) -> None:
        """Protected patients are never recycled; unprotecting one puts it at the end of
        the recycling order, as if it had just received an instance."""
        self.index.set_protected(self._patient(public_id), protected)

    # -- files and tags --------------------------------------------------------------------
    def _attachment(self, resource: Resource, content_type: int) -> FileInfo:
        info = self.index.attachments(resource).get(content_type)
        if info is None:
            raise UnknownResource(f"No attachment {content_type} on {resource.public_id}")
        return info

    def instance_file(self, public_id: str) -> bytes:
        """The DICOM file exactly as it was received."""
        resource = self.get(Level.INSTANCE, public_id)
        return self.store.read(self._attachment(resource, ContentType.Dicom))

    def instance_tags(self, public_id: str, fmt: str) -> dict[str, Any]:
        """``/tags`` (``fmt`` "full"), ``?simplify`` ("simplified") or ``?short``."""
        return self.content.instance_tags(public_id, fmt)

    # -- statistics ------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        t = self.index.totals()
        return {
            "CountPatients": t.patients,
            "CountStudies": t.studies,
            "CountSeries": t.series,
            "CountInstances": t.instances,
            **_size_fields("TotalDiskSize", t.disk_size),
            **_size_fields("TotalUncompressedSize", t.uncompressed_size),
        }

    def resource_statistics(self, level: Level, public_id: str) -> dict[str, Any]:
        t: Totals = self.index.resource_totals(self.get(level, public_id))
        out: dict[str, Any] = {}
        if level < Level.STUDY:
            out["CountStudies"] = t.studies
        if level < Level.SERIES:
            out["CountSeries"] = t.series
        if level < Level.INSTANCE:
            out["CountInstances"] = t.instances
        out.update(_size_fields("DiskSize", t.disk_size))
        out.update(_size_fields("UncompressedSize", t.uncompressed_size))
        out.update(_size_fields("DicomDiskSize", t.dicom_disk_size))
        out.update(_size_fields("DicomUncompressedSize", t.dicom_uncompressed_size))
        return out

    # -- deletion --------------------------------------------------------------------------
    def delete(
        self, level: Level, public_id: str, recycled: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Delete a resource, its descendants, and ancestors left empty (``recycled``: the
        payload of the RecycledPatient event, when recycling deletes a patient)."""
        outcome = self.index.delete_resource(level, public_id, recycled)
        if outcome is None:
            raise UnknownResource(f"Unknown {level.title.lower()}: {public_id}")
        self.store.remove(outcome.files)
        self.index.forget_files(outcome.files)
        remaining = None
        if outcome.remaining_ancestor is not None:
            anc_level, anc_id = outcome.remaining_ancestor
            remaining = {
                "ID": anc_id,
                "Path": f"/{anc_level.plural}/{anc_id}",
                "Type": anc_level.title,
            }
        return {"RemainingAncestor": remaining}


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
