"""Reading an incoming DICOM file: identifiers, main tags and the facts the index records.

Parsing stops before the pixel data, so the cost does not grow with the image size.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from ..domain.dicomjson import DEFAULT_ENCODING, main_dicom_tags, tag_value_to_string
from ..domain.model import Level
from ..errors import BadFileFormat
from ..ids import ResourceIds
from .completeness import check_complete, check_depth

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
_PIXEL_DATA_LE = b"\xe0\x7f\x10\x00"
_PIXEL_DATA_BE = b"\x7f\xe0\x00\x10"

_PATIENT_ID = Tag(0x0010, 0x0020)
_STUDY_UID = Tag(0x0020, 0x000D)
_SERIES_UID = Tag(0x0020, 0x000E)
_SOP_UID = Tag(0x0008, 0x0018)
_SOP_CLASS_UID = Tag(0x0008, 0x0016)
_INSTANCE_NUMBER = Tag(0x0020, 0x0013)
_IMAGE_INDEX = Tag(0x0054, 0x1330)


@dataclass
class ParsedInstance:
    dataset: Dataset
    ids: ResourceIds
    transfer_syntax: str
    sop_class_uid: str
    index_in_series: str | None
    pixel_data_offset: int | None
    expected_instances: int | None
    encoding: str = DEFAULT_ENCODING  # decodes text when the file has no SpecificCharacterSet
    _main_tags: dict[Level, dict[str, str]] = field(default_factory=dict, repr=False)

    def main_tags(self, level: Level) -> dict[str, str]:
        """Orthanc's main DICOM tags of one level; computed when first asked, since most
        instances join a series whose ancestors' tags are stored already."""
        tags = self._main_tags.get(level)
        if tags is None:
            tags = self._main_tags[level] = main_dicom_tags(
                self.dataset, level.title, encoding=self.encoding
            )
        return tags


def read_dataset(data: bytes) -> tuple[Dataset, int, bool]:
    """Parse up to the pixel data; returns the dataset, where parsing stopped, and whether
    the file lacked the DICOM preamble (read by force).

    Files without the DICOM preamble are accepted as DCMTK accepts them, but only if they
    carry the identifiers an instance needs (checked by the caller), so garbage is refused.
    """
    if not data:
        raise BadFileFormat("Received an empty DICOM file")
    for force in (False, True):
        stream = io.BytesIO(data)
        try:
            ds = pydicom.dcmread(stream, stop_before_pixels=True, force=force)
            return ds, stream.tell(), force
        except InvalidDicomError:
            continue
        except Exception:  # pydicom raises many kinds of errors on broken files
            break
    raise _unparsable(data)


def _unparsable(data: bytes) -> BadFileFormat:
    return BadFileFormat(f"Cannot parse an invalid DICOM file (size: {len(data)} bytes)")


def _required(ds: Dataset, tag: int, name: str) -> str:
    value = tag_value_to_string(ds, tag) if tag in ds else None
    if not value:
        raise BadFileFormat(f"The DICOM file has no {name}, which Orthanc IDs need")
    return value


def _int_or_none(ds: Dataset, tag: int) -> int | None:
    text = tag_value_to_string(ds, tag) if tag in ds else None
    try:
        return int(text.split("\\")[0]) if text else None
    except ValueError:
        return None


def expected_number_of_instances(ds: Dataset) -> int | None:
    """How many instances a series announces, when its tags say so (Orthanc's rule)."""
    images = _int_or_none(ds, 0x00201002)  # ImagesInAcquisition
    if images:
        temporal = _int_or_none(ds, 0x00200105)  # NumberOfTemporalPositions
        return images * temporal if temporal else images
    slices = _int_or_none(ds, 0x00540081)  # NumberOfSlices
    time_slices = _int_or_none(ds, 0x00540101)  # NumberOfTimeSlices
    if slices and time_slices:
        return slices * time_slices
    return _int_or_none(ds, 0x00189064) or None  # CardiacNumberOfImages


def parse_instance(data: bytes, encoding: str = DEFAULT_ENCODING) -> ParsedInstance:
    """Everything the pipeline needs from a DICOM file, or :class:`BadFileFormat`.
    ``encoding`` (a name of Orthanc's ``DefaultEncoding``) decodes the text of a file
    without SpecificCharacterSet."""
    ds, stopped_at, forced = read_dataset(data)
    try:
        parsed = _describe(ds, data, None if forced else stopped_at, encoding)
        check_complete(data, parsed.pixel_data_offset, parsed.transfer_syntax)
        check_depth(ds)
        return parsed
    except BadFileFormat:
        if forced:  # without a preamble and without identifiers: not DICOM at all
            raise _unparsable(data) from None
        raise
    except Exception as exc:  # a value pydicom cannot decode, and the like
        raise BadFileFormat(f"Cannot read the DICOM file: {exc}") from exc


def _describe(ds: Dataset, data: bytes, stopped_at: int | None, encoding: str) -> ParsedInstance:
    """``stopped_at``: where parsing stopped, None if the file had no DICOM preamble (its
    pixel data offset is then unknown, as for Orthanc, whose file reader needs one)."""
    patient_id = (
        tag_value_to_string(ds, _PATIENT_ID, encoding=encoding) if _PATIENT_ID in ds else ""
    )
    ids = ResourceIds.compute(
        patient_id or "",
        _required(ds, _STUDY_UID, "StudyInstanceUID"),
        _required(ds, _SERIES_UID, "SeriesInstanceUID"),
        _required(ds, _SOP_UID, "SOPInstanceUID"),
    )
    meta = getattr(ds, "file_meta", None)
    syntax = ""
    if meta is not None and "TransferSyntaxUID" in meta:
        syntax = str(meta.TransferSyntaxUID).strip("\0 ")
    syntax = syntax or IMPLICIT_VR_LITTLE_ENDIAN
    pixel_offset = None
    if (
        stopped_at is not None
        and syntax != DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
        and data[stopped_at : stopped_at + 4]
        in (
            _PIXEL_DATA_LE,
            _PIXEL_DATA_BE,
        )
    ):
        pixel_offset = stopped_at
    index = None
    for tag in (_INSTANCE_NUMBER, _IMAGE_INDEX):
        if tag in ds:
            index = tag_value_to_string(ds, tag) or None
            if index:
                break
    return ParsedInstance(
        dataset=ds,
        ids=ids,
        transfer_syntax=syntax,
        sop_class_uid=(tag_value_to_string(ds, _SOP_CLASS_UID) or "")
        if _SOP_CLASS_UID in ds
        else "",
        index_in_series=index,
        pixel_data_offset=pixel_offset,
        expected_instances=expected_number_of_instances(ds),
        encoding=encoding,
    )
