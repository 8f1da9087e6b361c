"""An instance in DICOMweb's JSON (PS3.18 F.2), as Orthanc 1.10.1 writes it for
``GET /instances/{id}/file`` with ``Accept: application/dicom+json``.

Orthanc's writer has its habits, kept here: group lengths are left out, and so is
encapsulated pixel data (native pixel data is inline); text is the stored value up to its
first NUL, padding spaces included; OF, OD and OL give numbers; a DS or IS that does not
parse is left out of the list; an element of unknown VR whose tag the dictionary knows is
read with the dictionary's VR when that is text, and left out when it is a number.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from .dicomjson import (
    _TEXT_VRS,
    _UNDEFINED_LENGTH,
    _Charset,
    _charset,
    _decode_text,
    _dictionary_vr,
    _implicit_vr,
    _sequence_items,
    raw_value,
)
from .dictionary import DicomDictionary

__all__ = ["dicomweb_json"]

_PIXEL_DATA = BaseTag(0x7FE00010)
_SPECIFIC_CHARACTER_SET = BaseTag(0x00080005)
_INTEGERS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "OL": "I"}
_FLOATS = {"FL": "f", "OF": "f", "FD": "d", "OD": "d"}
_BINARY = frozenset(("OB", "OW", "UN"))
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_DECIMAL_TEXT = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|nan)", re.IGNORECASE
)


class _Unsupported(Exception):
    """An element Orthanc's writer cannot place (an empty item before a filled one)."""


def dicomweb_json(ds: Dataset, dictionary: DicomDictionary, encoding: str) -> dict[str, Any] | None:
    """The DICOMweb JSON of a whole dataset (``encoding``: the default encoding, for a
    dataset without SpecificCharacterSet); None where Orthanc fails and sends the file."""
    try:
        return _dataset(ds, ds, _charset(ds, encoding), dictionary)
    except _Unsupported:
        return None


def _dataset(
    top: Dataset, item: Dataset, charset: _Charset, dictionary: DicomDictionary
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for tag in map(BaseTag, sorted(item.keys())):
        elem = item.get_item(tag)
        if elem is None or tag.element == 0:
            continue
        node = _element(top, item, tag, elem, charset, dictionary)
        if node is not None:
            result[f"{tag.group:04X}{tag.element:04X}"] = node
    return result


def _element(
    top: Dataset,
    item: Dataset,
    tag: BaseTag,
    elem: DataElement | RawDataElement,
    charset: _Charset,
    dictionary: DicomDictionary,
) -> dict[str, Any] | None:
    vr = elem.VR
    if vr in (None, "UN") and _encapsulated(elem):
        vr = "SQ"  # read as a sequence
    elif vr is None:
        vr = _implicit_vr(item, tag, dictionary)
        if vr in ("OB or OW", "ox"):  # DCMTK's choice in implicit VR
            vr = "OW" if tag == _PIXEL_DATA else "OB"
    if vr == "SQ":
        return _sequence(top, elem, charset, dictionary)
    data = raw_value(elem)
    if vr == "UN":  # read with the dictionary's VR: text or binary, other values left out
        known = _dictionary_vr(item, tag, dictionary)
        if known in _TEXT_VRS or known in ("OB", "OW"):
            vr = known
        elif known not in (None, "UN"):
            return None
    if vr in _TEXT_VRS:
        return _text(tag, vr, data, charset)
    if vr in _BINARY:
        return _binary(tag, vr, elem, data)
    if vr in ("OL", "OF", "OD"):
        data = data[: struct.calcsize((_INTEGERS | _FLOATS)[vr])]  # one value, as DCMTK counts
    if vr in _INTEGERS:
        return _numbers(vr, data, _INTEGERS[vr], _integer)
    if vr in _FLOATS:
        return _numbers(vr, data, _FLOATS[vr], _double)
    if vr == "AT":
        count = len(data) // 4
        words = struct.unpack(f"<{2 * count}H", data[: 4 * count])
        values = [f"{g:04X}{e:04X}" for g, e in zip(words[::2], words[1::2], strict=True)]
        return {"vr": "AT", **({"Value": values} if values else {})}
    return None  # xs, SV, UV, OV...: not written


def _sequence(
    top: Dataset, elem: DataElement | RawDataElement, charset: _Charset, dictionary: DicomDictionary
) -> dict[str, Any] | None:
    items = _sequence_items(elem)
    if items is None:
        return None
    if not items:
        return {"vr": "SQ"}
    values = [_dataset(top, child, charset, dictionary) for child in items]
    while values and not values[-1]:
        values.pop()  # an item is only written with its first element
    if not values:
        return None
    if not all(values):
        raise _Unsupported("an empty item before a filled one")
    return {"vr": "SQ", "Value": values}


def _text(tag: BaseTag, vr: str, data: bytes, charset: _Charset) -> dict[str, Any]:
    data = data.split(b"\0", 1)[0]
    # SpecificCharacterSet itself is not converted; padding spaces are dropped.
    charset_itself = tag == _SPECIFIC_CHARACTER_SET
    text = data.decode("latin-1") if charset_itself else _decode_text(data, charset)
    text = text.rstrip(" ")
    node: dict[str, Any] = {"vr": vr}
    if not text:
        return node
    tokens = text.split("\\")
    if tag == _SPECIFIC_CHARACTER_SET and len(tokens) > 1 and not tokens[0]:
        tokens = tokens[1:]  # code extensions: the first term is the default repertoire
    values: list[Any] = []
    for token in tokens:
        if vr == "PN":
            parts = token.split("=") if token else []
            names = dict(zip(("Alphabetic", "Ideographic", "Phonetic"), parts, strict=False))
            values.append(names)
        elif vr in ("IS", "DS"):
            stripped = token.strip(" ")
            if not stripped:
                values.append(None)
            elif vr == "IS" and _INTEGER_TEXT.fullmatch(stripped):
                values.append(_integer(int(stripped)))
            elif vr == "DS" and _DECIMAL_TEXT.fullmatch(stripped):
                values.append(_double(float(stripped)))
            # else: a value that does not parse is left out, as Orthanc does
        else:
            values.append(token or None)
    node["Value"] = values
    return node


def _binary(
    tag: BaseTag, vr: str, elem: DataElement | RawDataElement, data: bytes
) -> dict[str, Any] | None:
    if tag == _PIXEL_DATA and _encapsulated(elem):
        return None
    node: dict[str, Any] = {"vr": vr}
    if data or tag == _PIXEL_DATA:
        node["InlineBinary"] = base64.b64encode(data).decode("ascii")
    return node


def _encapsulated(elem: DataElement | RawDataElement) -> bool:
    if isinstance(elem, RawDataElement):
        return elem.length == _UNDEFINED_LENGTH
    return bool(elem.is_undefined_length)


def _numbers(vr: str, data: bytes, code: str, format_value: Any) -> dict[str, Any]:
    size = struct.calcsize(code)
    count = len(data) // size
    values = struct.unpack(f"<{count}{code}", data[: count * size])
    node: dict[str, Any] = {"vr": vr}
    if values:
        node["Value"] = [format_value(v) for v in values]
    return node


def _integer(value: int) -> int:
    """Orthanc keeps integers in 32 bits: signed if negative, unsigned otherwise."""
    if value < 0:
        return ((value + 2**31) % 2**32) - 2**31
    return value % 2**32


def _double(value: float) -> int | float:
    """A number that is an integer (to within 100 epsilons) is written as one."""
    if math.isfinite(value) and abs(value) < 2**63:
        rounded = math.floor(value + 0.5) if value >= 0 else -math.floor(-value + 0.5)
        if abs(value - rounded) <= 2.220446049250313e-16 * 100:
            return _integer(int(rounded))
    return value
