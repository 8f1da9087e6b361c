"""The DICOMDIR of a media archive, with the records Orthanc writes in it.

pydicom's File-set machinery encodes the DICOMDIR (the record sequence, its offsets, the
file meta); this module only decides what each record holds, as Orthanc's DICOMDIR writer
does: a PATIENT, STUDY, SERIES and IMAGE record per instance, shared by the instances of a
patient (by PatientID), study and series (by UID); text values reduced to ASCII; the study
date and time taken from the series, acquisition or content ones, or now, when missing.

pydicom's ``FileSet.add`` would stage a copy of every instance on disk and compare each new
instance with all the earlier ones, which is quadratic; the record tree is therefore built
here (a dictionary per level) and handed whole to the File-set for encoding.
"""

from __future__ import annotations

import io
import time

from pydicom.dataset import Dataset
from pydicom.filebase import DicomFileLike
from pydicom.fileset import FileSet, RecordNode
from pydicom.multival import MultiValue

from ..errors import BadFileFormat

FILE_SET_ID = "ORTHANC_MEDIA"

_DATE_FALLBACKS = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
_TIME_FALLBACKS = ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime")


def _text(ds: Dataset, keyword: str) -> str | None:
    """A text element's value (None if absent, "" if empty), reduced to ASCII as Orthanc
    writes DICOMDIR values; several values are joined by backslashes."""
    if keyword not in ds:
        return None
    value = ds[keyword].value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return None  # not a text element
    values = value if isinstance(value, MultiValue | list | tuple) else [value]
    parts = [_one(v) for v in values]
    return "".join(c for c in "\\".join(parts) if ord(c) < 128)


def _one(value: object) -> str:
    # A number keeps the text it was written with ("0012"); a person name's original
    # string is its undecoded bytes, so it goes through str().
    original = getattr(value, "original_string", None)
    return original if isinstance(original, str) else str(value)


def _copy(record: Dataset, ds: Dataset, keyword: str, kind: str) -> None:
    """Copy one element into a record with the DICOMDIR "type" rules Orthanc follows:
    "1" and "2" always (empty if absent), "1C" only with a value, "3" when present."""
    value = _text(ds, keyword)
    if kind == "1C" and not value:
        return
    if kind == "3" and value is None:
        return
    setattr(record, keyword, value or "")


def _first(ds: Dataset, keywords: tuple[str, ...], default: str) -> str:
    for keyword in keywords:
        value = _text(ds, keyword)
        if value is not None:
            return value
    return default


class DicomDir:
    """Records added instance by instance, then :meth:`encode` gives the DICOMDIR file.
    ``extended`` adds the series description (Orthanc's "extended" DICOMDIR)."""

    def __init__(self, extended: bool = False) -> None:
        self.extended = extended
        self._roots: list[RecordNode] = []
        self._patients: dict[str, RecordNode] = {}
        self._studies: dict[str, RecordNode] = {}
        self._series: dict[str, RecordNode] = {}
        self._instances: set[str] = set()
        self._no_patient_id: list[Dataset] = []

    def add(self, ds: Dataset, file_id: list[str], transfer_syntax: str | None = None) -> None:
        """Record an instance stored at ``file_id`` (its folders and name). A second instance
        with the same SOP Instance UID is left out, as Orthanc does."""
        sop_uid = _text(ds, "SOPInstanceUID")
        sop_class = _text(ds, "SOPClassUID")
        meta = getattr(ds, "file_meta", None)
        syntax = str(meta.TransferSyntaxUID) if meta and "TransferSyntaxUID" in meta else None
        syntax = syntax or transfer_syntax
        if not (sop_uid and sop_class and syntax):
            raise BadFileFormat("An instance without SOP UIDs or transfer syntax")
        if sop_uid in self._instances:
            return
        self._instances.add(sop_uid)
        image = self._record(ds, "IMAGE")
        _copy(image, ds, "InstanceNumber", "1")
        image.ReferencedFileID = file_id
        image.ReferencedSOPClassUIDInFile = sop_class
        image.ReferencedSOPInstanceUIDInFile = sop_uid
        image.ReferencedTransferSyntaxUIDInFile = syntax
        leaf = RecordNode(image)
        self._attach(leaf, ds)

    def _attach(self, leaf: RecordNode, ds: Dataset) -> None:
        series_uid = _text(ds, "SeriesInstanceUID")
        study_uid = _text(ds, "StudyInstanceUID")
        if series_uid is None or study_uid is None:
            raise BadFileFormat("An instance without study or series UID")
        series = self._series.get(series_uid)
        if series is not None:
            leaf.parent = series
            return
        series = self._series[series_uid] = RecordNode(self._series_record(ds))
        leaf.parent = series
        study = self._studies.get(study_uid)
        if study is not None:
            series.parent = study
            return
        study = self._studies[study_uid] = RecordNode(self._study_record(ds))
        series.parent = study
        patient_id = _text(ds, "PatientID") or ""
        patient = self._patients.get(patient_id)
        if patient is None:
            patient = self._patients[patient_id] = RecordNode(self._patient_record(ds))
            self._roots.append(patient)
        study.parent = patient

    def _record(self, ds: Dataset, kind: str) -> Dataset:
        record = Dataset()
        record.DirectoryRecordType = kind
        if ds.get("SpecificCharacterSet"):
            record.SpecificCharacterSet = ds.SpecificCharacterSet
        return record

    def _patient_record(self, ds: Dataset) -> Dataset:
        record = self._record(ds, "PATIENT")
        _copy(record, ds, "PatientName", "2")
        # pydicom keys a PATIENT node by its PatientID; Orthanc leaves an absent one out,
        # which is done just before encoding.
        record.PatientID = _text(ds, "PatientID") or ""
        if not _text(ds, "PatientID"):
            self._no_patient_id.append(record)
        return record

    def _study_record(self, ds: Dataset) -> Dataset:
        record = self._record(ds, "STUDY")
        now = time.gmtime()
        record.StudyDate = _first(ds, _DATE_FALLBACKS, time.strftime("%Y%m%d", now))
        record.StudyTime = _first(ds, _TIME_FALLBACKS, time.strftime("%H%M%S", now) + ".000000")
        _copy(record, ds, "StudyDescription", "2")
        _copy(record, ds, "StudyInstanceUID", "1")
        _copy(record, ds, "StudyID", "1C")
        _copy(record, ds, "AccessionNumber", "2")
        return record

    def _series_record(self, ds: Dataset) -> Dataset:
        record = self._record(ds, "SERIES")
        _copy(record, ds, "Modality", "1")
        _copy(record, ds, "SeriesInstanceUID", "1")
        _copy(record, ds, "SeriesNumber", "1C")
        if self.extended:
            _copy(record, ds, "SeriesDescription", "3")
        return record

    def encode(self) -> bytes:
        """The DICOMDIR file (explicit VR little endian, as the standard wants)."""
        for record in self._no_patient_id:
            del record.PatientID
        file_set = FileSet()
        file_set.ID = FILE_SET_ID
        root = file_set._tree  # the File-set's record tree, filled here in one go
        for patient in self._roots:
            patient.parent = root
        out = io.BytesIO()
        try:
            file_set._write_dicomdir(DicomFileLike(out))
        finally:
            close_file_set(file_set)
        return out.getvalue()


def close_file_set(file_set: FileSet) -> None:
    """A File-set makes a staging folder for the instances it would copy, and leaves it to
    the garbage collector (with a ResourceWarning); none is staged here."""
    file_set._stage["t"].cleanup()
