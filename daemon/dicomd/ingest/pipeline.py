"""The ingest pipeline: parse -> write files -> index in one transaction -> settle files.

Nothing is half-stored when a step fails: written files are deleted again if the transaction
does not commit, and a crash between the steps is repaired by :meth:`FileStore.recover` at
the next start. Notifications will come from the change log the transaction writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import Config
from ..domain.dicomjson import dataset_to_json
from ..domain.model import (
    Change,
    ContentType,
    InstanceRecord,
    Level,
    Metadata,
    Origin,
    StorageLimits,
    StoreOutcome,
    now_iso,
)
from ..errors import BadFileFormat, FullStorage
from ..ids import ResourceIds
from ..storage.index import Index
from ..storage.store import FileInfo, FileStore
from .parse import ParsedInstance, parse_instance
from .unpack import is_zip, iter_zip_members

if TYPE_CHECKING:
    from ..events.handlers import Filters
    from ..events.recycling import Recycler

log = logging.getLogger(__name__)

MEGABYTE = 1024 * 1024  # Orthanc's MaximumStorageSize megabytes


@dataclass
class IngestResult:
    """The outcome of one instance: Orthanc's upload answer and the changes it logged."""

    status: str  # Success, AlreadyStored, FilteredOut
    ids: ResourceIds
    changes: list[Change] = field(default_factory=list)

    def answer(self) -> dict[str, str]:
        """Orthanc's JSON answer to ``POST /instances``."""
        return {
            "ID": self.ids.instance,
            "Path": f"/instances/{self.ids.instance}",
            "Status": self.status,
            "ParentPatient": self.ids.patient,
            "ParentStudy": self.ids.study,
            "ParentSeries": self.ids.series,
        }


def _instance_metadata(parsed: ParsedInstance, origin: Origin, date: str) -> dict[int, str]:
    meta: dict[int, str] = {
        Metadata.ReceptionDate: date,
        Metadata.RemoteAET: origin.remote_aet,
        Metadata.Origin: origin.request_origin,
        Metadata.TransferSyntax: parsed.transfer_syntax,
        Metadata.SopClassUid: parsed.sop_class_uid,
    }
    if origin.request_origin in ("RestApi", "DicomProtocol"):
        meta[Metadata.RemoteIP] = origin.remote_ip
    if origin.request_origin == "RestApi":
        meta[Metadata.HttpUsername] = origin.username
    if origin.request_origin == "DicomProtocol":
        meta[Metadata.CalledAET] = origin.called_aet
    if parsed.index_in_series is not None:
        meta[Metadata.IndexInSeries] = parsed.index_in_series
    if parsed.pixel_data_offset is not None:
        meta[Metadata.PixelDataOffset] = str(parsed.pixel_data_offset)
    return {int(k): v for k, v in meta.items()}


def _series_metadata(parsed: ParsedInstance, origin: Origin) -> dict[int, str]:
    meta = {int(Metadata.RemoteAET): origin.remote_aet}
    if parsed.expected_instances:
        meta[int(Metadata.ExpectedNumberOfInstances)] = str(parsed.expected_instances)
    return meta


class IngestPipeline:
    """Stores DICOM instances; safe to call from many threads at once."""

    def __init__(
        self,
        config: Config,
        store: FileStore,
        index: Index,
        recycler: Recycler | None = None,
        filters: Filters | None = None,
        on_stored: Callable[[], None] | None = None,
        encoding: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        # The default encoding, which an operator may change while the daemon runs.
        self.encoding = encoding or (lambda: config.default_encoding)
        self.store = store
        self.index = index
        self.recycler = recycler
        self.filters = filters
        self.on_stored = on_stored  # new events are in the log: handlers need not wait to poll
        self.limits = StorageLimits(
            config.maximum_storage_size * MEGABYTE, config.maximum_patient_count
        )

    def ingest(self, data: bytes, origin: Origin) -> IngestResult:
        """Store one DICOM file. Raises :class:`BadFileFormat` for anything not storable."""
        parsed = parse_instance(data, self.encoding())
        if not self._accepted(parsed, origin):
            return IngestResult("FilteredOut", parsed.ids)
        overwrite = self.config.overwrite_instances
        if not overwrite and self.index.get(Level.INSTANCE, parsed.ids.instance) is not None:
            return IngestResult("AlreadyStored", parsed.ids)

        files = self._write_files(data, parsed)
        date = now_iso()
        record = InstanceRecord(
            ids=parsed.ids,
            main_tags=parsed.main_tags,
            instance_metadata=_instance_metadata(parsed, origin, date),
            series_metadata=_series_metadata(parsed, origin),
            files=files,
            overwrite=overwrite,
            stable_deadline=time.time() + self.config.stable_age,
            limits=self.limits,
            date=date,
        )
        try:
            outcome = self._store_making_room(record)
        except BaseException:
            self.store.settle(files, committed=False)
            raise
        if outcome.status != "Success":
            self.store.settle(files, committed=False)
            return IngestResult(outcome.status, parsed.ids)
        self.store.settle(files, committed=True)
        if self.on_stored is not None:
            self.on_stored()
        if outcome.removed_files:
            self.store.remove(outcome.removed_files)
            self.index.forget_files(outcome.removed_files)
        return IngestResult("Success", parsed.ids, outcome.changes)

    def _accepted(self, parsed: ParsedInstance, origin: Origin) -> bool:
        """The incoming-instance filters (Lua ``ReceivedInstanceFilter`` and friends)."""
        if self.filters is None or not self.filters.has("instance"):
            return True
        has_pixels = parsed.pixel_data_offset is not None
        tags = dataset_to_json(
            parsed.dataset,
            "simplified",
            has_pixel_data=has_pixels,
            encoding=parsed.encoding,
            dictionary=self.config.dicom_dictionary,
        )
        info = {"HasPixelData": has_pixels, "TransferSyntaxUID": parsed.transfer_syntax}
        return self.filters.accept_instance(tags, origin.as_orthanc(), info)

    def _store_making_room(self, record: InstanceRecord) -> StoreOutcome:
        """Store; when over the limits, recycle patients one at a time until the instance
        fits (or refuse it with 507 in ``Reject`` mode or when no patient may go)."""
        size = sum(f.compressed_size for f in record.files)
        if self.limits.max_bytes and size > self.limits.max_bytes:
            raise FullStorage("The instance alone is larger than MaximumStorageSize")
        spared = {record.ids.patient}  # never recycle the patient being stored into
        while True:
            outcome = self.index.store_instance(record)
            if outcome.status != "Full":
                return outcome
            if self.config.maximum_storage_mode == "Reject":
                raise FullStorage("The storage is full (MaximumStorageMode is Reject)")
            if self.recycler is None or not self.recycler.recycle_one(spared):
                raise FullStorage("The storage is full and no patient can be recycled")

    def ingest_upload(
        self, data: bytes, origin: Origin, skipped: list[str] | None = None
    ) -> IngestResult | list[IngestResult]:
        """Store one uploaded body: a DICOM file, or a ZIP archive of them (a list).

        In a ZIP, entries that are not DICOM are skipped, as Orthanc does; ``skipped``, when
        given, receives one ``"name: reason"`` line for each, so that a hot folder can keep
        an archive whose content was not all stored.
        """
        if not is_zip(data):
            return self.ingest(data, origin)
        results = []
        for name, member in iter_zip_members(data):
            try:
                results.append(self.ingest(member, origin))
            except BadFileFormat as exc:
                log.info("ZIP entry %s skipped: %s", name, exc)
                if skipped is not None:
                    skipped.append(f"{name}: {exc}")
        return results

    def _write_files(self, data: bytes, parsed: ParsedInstance) -> list[FileInfo]:
        compress = self.config.storage_compression
        files = [self.store.write(data, ContentType.Dicom, compress)]
        try:
            if compress and parsed.pixel_data_offset:
                # As Orthanc does, keep the header separately so that reading tags does not
                # need to decompress the whole image.
                header = data[: parsed.pixel_data_offset]
                files.append(self.store.write(header, ContentType.DicomUntilPixelData, True))
        except BaseException:
            self.store.settle(files, committed=False)
            raise
        return files
