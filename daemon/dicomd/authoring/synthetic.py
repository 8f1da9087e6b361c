"""Small, valid DICOM instances made up on the spot, for testing scripts: any tag can be
chosen by its keyword, the rest gets plausible values and fresh UIDs."""

from __future__ import annotations

import io
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

# The storage class of an image of each modality; other modalities are secondary captures.
_SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "NM": "1.2.840.10008.5.1.4.1.1.20",
}
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_SIDE = 8  # pixels: 8 x 8, 8 bits


def make_instance(*, pixels: bool = True, **tags: Any) -> Dataset:
    """One instance: a CT of patient ``PAT1`` (``Doe^Jane``) in a study and series of its
    own unless ``tags`` say otherwise, e.g. ``Modality="MR"``, ``PatientName="Smith^Ann"``,
    ``StudyInstanceUID=...`` or any other DICOM keyword. ``pixels``: a small image."""
    unknown = [keyword for keyword in tags if tag_for_keyword(keyword) is None]
    if unknown:
        raise ValueError(f"not DICOM keywords: {', '.join(unknown)}")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientID = "PAT1"
    ds.PatientName = "Doe^Jane"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.StudyDescription = "Study"
    ds.AccessionNumber = "ACC1"
    ds.StudyID = "1"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.Modality = tags.get("Modality", "CT")
    ds.SeriesDescription = "Series"
    ds.InstanceNumber = 1
    ds.SOPClassUID = _SOP_CLASSES.get(ds.Modality, _SECONDARY_CAPTURE)
    ds.SOPInstanceUID = generate_uid()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    if pixels:
        _add_pixels(ds)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def make_series(count: int, *, pixels: bool = True, **tags: Any) -> list[Dataset]:
    """``count`` instances of one series (numbered from 1), with the same ``tags``."""
    tags.setdefault("StudyInstanceUID", generate_uid())
    tags.setdefault("SeriesInstanceUID", generate_uid())
    return [
        make_instance(pixels=pixels, **{**tags, "InstanceNumber": number})
        for number in range(1, count + 1)
    ]


def _add_pixels(ds: Dataset) -> None:
    ds.Rows = ds.Columns = _SIDE
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    start = int(ds.InstanceNumber or 0)
    ds.PixelData = bytes((start + i) % 256 for i in range(_SIDE * _SIDE))


def dataset_bytes(ds: Dataset) -> bytes:
    """A dataset as a DICOM Part-10 file."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
