"""Small, real DICOM files made with pydicom for the tests."""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def make_dataset(
    *,
    patient_id: str = "PAT1",
    patient_name: str = "Test^Patient",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    instance_number: int = 1,
    rows: int = 16,
    cols: int = 16,
    with_pixels: bool = True,
    seed: int = 0,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.StudyDescription = "Test study"
    ds.AccessionNumber = "ACC1"
    ds.StudyID = "1"
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SeriesNumber = 1
    ds.Modality = "CT"
    ds.SeriesDescription = "Test series"
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = ["0", "0", str(instance_number)]
    if with_pixels:
        ds.Rows = rows
        ds.Columns = cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        rng = np.random.default_rng(seed + instance_number)
        ds.PixelData = rng.integers(0, 4096, size=(rows, cols), dtype=np.uint16).tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_dicom(**kwargs: object) -> bytes:
    """A valid DICOM Part-10 file (CT, Explicit VR Little Endian) as bytes."""
    return to_bytes(make_dataset(**kwargs))  # type: ignore[arg-type]


def make_series(count: int, **kwargs: object) -> list[bytes]:
    study = kwargs.pop("study_uid", None) or generate_uid()
    series = kwargs.pop("series_uid", None) or generate_uid()
    return [
        make_dicom(study_uid=study, series_uid=series, instance_number=i + 1, **kwargs)
        for i in range(count)
    ]
