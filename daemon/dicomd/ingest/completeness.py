"""Whether an incoming file is whole: pydicom reads leniently (an element cut by the end of
the file is read short, without a word), so the pipeline checks what pydicom read against
what the file declares, and refuses a truncated file as DCMTK (hence Orthanc) does.

A file can only be cut at its end. When the header was read up to the pixel data, only the
pixel data and what follows it can be short, and only that is walked; otherwise (no pixel
data) the whole dataset is, which is small. The walk is pydicom's own element generator,
which skips over long values without reading them; what it yields is compared with the
lengths declared, and where it ends with the size of the file.

Nesting depth is bounded too, so that a stored file can always be shown (``/tags``).
"""

from __future__ import annotations

import io
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import _read_file_meta_info, data_element_generator, read_preamble
from pydicom.uid import UID

from ..errors import BadFileFormat

UNDEFINED_LENGTH = 0xFFFFFFFF
DEFLATED = "1.2.840.10008.1.2.1.99"
# Deeper sequences than any real IOD has (the deepest standard ones are under 10 levels).
MAX_DEPTH = 64


def check_complete(data: bytes, start: int | None, syntax: str) -> None:
    """Raise :class:`BadFileFormat` if an element runs past the end of ``data``.

    ``start``: where the pixel data element begins, or None to walk the whole dataset."""
    if syntax == DEFLATED:
        return  # compressed as a whole: pydicom's inflation fails on a cut stream
    uid = UID(syntax)
    implicit, little = (
        (uid.is_implicit_VR, uid.is_little_endian) if uid.is_transfer_syntax else (True, True)
    )
    stream = io.BytesIO(data)
    try:
        if start is None:
            read_preamble(stream, True)
            meta = _read_file_meta_info(stream)
            if "TransferSyntaxUID" not in meta:
                stream.seek(0)  # no meta information: a bare dataset
                read_preamble(stream, True)
        else:
            stream.seek(start)
        for elem in data_element_generator(stream, implicit, little, defer_size=1024):
            _check_element(elem)
    except BadFileFormat:
        raise
    except RecursionError:
        raise BadFileFormat("The DICOM file nests sequences too deeply") from None
    except Exception as exc:  # EOFError before a delimiter, and the like
        raise BadFileFormat(f"The DICOM file is truncated: {exc}") from None
    if stream.tell() > len(data):
        raise BadFileFormat(
            f"The DICOM file is truncated: its last element needs {stream.tell() - len(data)} "
            "more bytes"
        )


def _check_element(elem: Any) -> None:
    if not isinstance(elem, RawDataElement) or elem.length == UNDEFINED_LENGTH:
        return
    if elem.value is not None and len(elem.value) < elem.length:
        raise BadFileFormat(
            f"The DICOM file is truncated: element {elem.tag} declares {elem.length} bytes, "
            f"{len(elem.value)} are there"
        )


def check_depth(ds: Dataset, limit: int = MAX_DEPTH) -> None:
    """Raise :class:`BadFileFormat` if sequences nest deeper than ``limit`` (walked
    without recursion, so any depth is safe to check)."""
    stack: list[tuple[Dataset, int]] = [(ds, 0)]
    try:
        while stack:
            item, depth = stack.pop()
            for elem in _sequences(item):
                if depth + 1 > limit:
                    raise BadFileFormat(
                        f"The DICOM file nests sequences deeper than {limit} levels"
                    )
                stack.extend((child, depth + 1) for child in elem.value)
    except RecursionError:
        raise BadFileFormat(f"The DICOM file nests sequences deeper than {limit} levels") from None


def _sequences(item: Dataset) -> list[Any]:
    """The non-empty sequences of one item, converting no element that is not one."""
    out = []
    for tag in list(item.keys()):
        raw = item.get_item(tag)
        if raw is None:
            continue
        vr = raw.VR if raw.VR is not None else _dictionary_vr(tag)
        if vr != "SQ":
            continue
        elem = item[tag]
        if elem.VR == "SQ" and elem.value:
            out.append(elem)
    return out


def _dictionary_vr(tag: Any) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None
