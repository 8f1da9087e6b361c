"""Render pydicom datasets exactly as Orthanc 1.10.1 shows them over REST.

Orthanc builds its DICOM-as-JSON answers (``/tags``, ``?simplify``, ``?short``,
``/simplified-tags``) and the ``MainDicomTags`` of resources from DCMTK's view of a file.
dicomd parses files with pydicom, so this module re-creates those conventions: values
are read from the raw bytes of unconverted elements and sequences are split by a small
parser of our own (so pydicom never validates nor warns, and its configuration is left
alone); text is trimmed as DCMTK trims it and decoded with Orthanc's charset rules;
numbers are printed like ``boost::lexical_cast``; names follow DCMTK's dictionary.
Everything is a pure function of its arguments and never raises on malformed values.
"""

from __future__ import annotations

import array
import enum
import re
import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from pydicom.datadict import get_entry, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag, TagType

from .dictionary import DicomDictionary, default_dictionary

__all__ = [
    "FORMATS",
    "MAIN_DICOM_TAGS",
    "dataset_to_json",
    "main_dicom_tags",
    "raw_value",
    "sequence_items",
    "simplify",
    "tag_value_to_string",
]


def _tags(hex_tags: str) -> tuple[BaseTag, ...]:
    return tuple(BaseTag(int(tag, 16)) for tag in hex_tags.split())


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Orthanc 1.10.1's default main DICOM tags per resource level, in Orthanc's order
#: (DicomMap.cpp, DEFAULT_*_MAIN_DICOM_TAGS); each level includes its identifier tag.
MAIN_DICOM_TAGS: dict[str, tuple[BaseTag, ...]] = {
    "Patient": _tags("00100010 00100030 00100040 00101000 00100020"),
    "Study": _tags(
        "00080020 00080030 00200010 00081030 00080050 0020000D 00321060 00080080 00321032 00080090"
    ),
    "Series": _tags(
        "00080021 00080031 00080060 00080070 00081010 0008103E 00180015 00180024 00181030"
        " 00200011 00181090 00201002 00200105 00540081 00540101 0020000E 00200037 00541000"
        " 00081070 00400254 00181400 00180010"
    ),
    "Instance": _tags(
        "00080012 00080013 00200012 00541330 00200013 00280008 00200100 00080018 00200032"
        " 00204000 00200037"
    ),
}

#: The DICOM-as-JSON formats: ``/tags``, ``?simplify`` and ``?short``.
FORMATS = ("full", "simplified", "short")
_MAIN_TAG_MAX_LENGTH = 256  # ORTHANC_MAXIMUM_TAG_LENGTH: longer main tags are not stored
_PIXEL_DATA = 0x7FE00010
_SPECIFIC_CHARACTER_SET = 0x00080005
_PIXEL_REPRESENTATION = 0x00280103
_UNKNOWN_NAME = "Unknown Tag & Data"
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Size of one value of the binary VRs whose bytes DCMTK gives in the machine's (little-endian)
# order, whatever the file's.
_WORD_SIZES = {
    "US": 2, "SS": 2, "OW": 2, "AT": 2, "UL": 4, "SL": 4, "FL": 4, "OF": 4, "OL": 4,
    "FD": 8, "OD": 8, "SV": 8, "UV": 8, "OV": 8,
}  # fmt: skip
_C_SPACES = " \t\n\v\f\r"  # what C's isspace() accepts

# VRs that DCMTK keeps as byte strings (Orthanc converts all of them to UTF-8).
_TEXT_VRS = _words("AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT")
# Explicit-VR encodings with a 4-byte length field.
_LONG_LENGTH_VRS = _words("OB OD OF OL OV OW SQ SV UC UN UR UT UV")
# Binary numeric VRs: struct code and size of one value (SV and UV are unknown to
# Orthanc 1.10, hence null).
_NUMERIC_VRS: Mapping[str, tuple[str, int]] = MappingProxyType(
    {"US": ("H", 2), "SS": ("h", 2), "UL": ("I", 4), "SL": ("i", 4), "FL": ("f", 4), "FD": ("d", 8)}
)
# "US or SS" tags that DCMTK resolves with PixelRepresentation in implicit VR; the
# other "US or SS" tags stay unresolved there and Orthanc shows them as null.
_PIXEL_REPRESENTATION_TAGS = frozenset(
    _tags("00280106 00280107 00280108 00280109 00280120 00280121 00283002 00409211 00409216")
    + _tags("00603004 00603006")
)
# Shown without "RETIRED_" though pydicom's newer dictionary retires them: Orthanc
# patches OtherPatientIDs, and DCMTK 3.6.7 does not retire the others yet.
_UNRETIRED_NAMES = frozenset(
    _tags("00101000 00380004 00701807 00701808 30040010 30040012 30060085 30060088 3008002B")
    + _tags("30100090")
)
# Orthanc's GetDicomEncoding(): defined term -> Python codec (None: Orthanc's ASCII mode).
_CODECS: Mapping[str, str | None] = MappingProxyType(
    {
        "ISO_IR 6": None,
        "ISO 2022 IR 6": None,
        "ISO_IR 192": "utf-8",
        "GB18030": "gb18030",
        "GBK": "gb18030",
        "ISO 2022 IR 149": "cp949",
        "ISO 2022 IR 87": "iso2022_jp",
        "ISO 2022 IR 58": "gb2312",
        **{
            prefix + item.split(":")[0]: item.split(":")[1]
            for item in _words(
                "100:latin_1 101:iso8859_2 109:iso8859_3 110:iso8859_4 148:iso8859_9 144:iso8859_5"
                " 127:iso8859_6 126:iso8859_7 138:iso8859_8 166:tis_620 13:shift_jis"
            )
            for prefix in ("ISO_IR ", "ISO 2022 IR ")
        },
    }
)
# Bytes Orthanc drops in ASCII mode: NUL, non-ASCII and control characters except LF.
_NON_ASCII = bytes(b for b in range(256) if not (32 <= b <= 126 or b == 10))
# ICU's Shift-JIS, used by Orthanc, maps the JIS-Roman positions of backslash and tilde.
_JIS_ROMAN: Mapping[int, str] = MappingProxyType({0x5C: "\u00a5", 0x7E: "\u203e"})
# ISO-2022-JP escapes other than the designations of ASCII, JIS-Roman and JIS X 0208.
_JIS_BAD_ESCAPES = re.compile(rb"\x1b(?!\(B|\(J|\$@|\$B)")
# ISO 2022 shifts and escape sequences, removed when code extensions are in use.
_ISO2022_CONTROLS = re.compile("[\x0e\x0f]|\x1b[noNO|}~]|\x1b[\x20-\x2f]+[\x30-\x7f]")


# Orthanc's encodings, by the name of its "DefaultEncoding" option (and of
# /tools/default-encoding) -> Python codec (None: Orthanc's ASCII mode). The default encoding
# decodes the text of a dataset that has no SpecificCharacterSet.
ENCODINGS: Mapping[str, str | None] = MappingProxyType(
    {
        "Ascii": None,
        "Utf8": "utf-8",
        "Latin1": "latin_1",
        "Latin2": "iso8859_2",
        "Latin3": "iso8859_3",
        "Latin4": "iso8859_4",
        "Latin5": "iso8859_9",
        "Cyrillic": "iso8859_5",
        "Windows1251": "cp1251",
        "Arabic": "iso8859_6",
        "Greek": "iso8859_7",
        "Hebrew": "iso8859_8",
        "Thai": "tis_620",
        "Japanese": "shift_jis",
        "Chinese": "gb18030",
        "Korean": "cp949",
        "JapaneseKanji": "iso2022_jp",
        "SimplifiedChinese": "gb2312",
    }
)
DEFAULT_ENCODING = "Latin1"


class _Charset(NamedTuple):
    """How Orthanc decodes the text of one dataset."""

    codec: str | None  # None: keep printable ASCII only
    extensions: bool  # several defined terms: remove ISO 2022 escape sequences


_UTF8 = _Charset("utf-8", False)


class _Context(NamedTuple):
    """What decoding the elements of one dataset needs."""

    charset: _Charset
    dictionary: DicomDictionary


class _Kind(enum.Enum):
    """Marker returned instead of a string for sequence elements."""

    SEQUENCE = "SQ"


_Value = str | None | Literal[_Kind.SEQUENCE]


def _charset(ds: Dataset, default: str = DEFAULT_ENCODING) -> _Charset:
    """Detect the encoding as Orthanc does: the first non-empty defined term decides; with
    no SpecificCharacterSet (or only empty terms), the default encoding (a name of
    :data:`ENCODINGS`)."""
    elem = ds.get_item(_SPECIFIC_CHARACTER_SET)
    if elem is None:
        return _Charset(ENCODINGS[default], False)
    if isinstance(elem, RawDataElement):
        terms = _raw_bytes(elem).decode("latin_1").split("\\")
    else:
        terms = _join_values(elem.value).split("\\")
    for term in terms:
        if term.strip(_C_SPACES):
            return _Charset(_CODECS.get(term.strip(_C_SPACES).upper()), len(terms) > 1)
    return _Charset(ENCODINGS[default], len(terms) > 1)


def _decode_text(data: bytes, charset: _Charset) -> str:
    """Convert raw text bytes like Orthanc's Toolbox::ConvertToUtf8 (bad bytes skipped)."""
    if charset.codec is None:
        return data.translate(None, _NON_ASCII).decode("ascii")
    if charset.codec == "utf-8":
        text = _decode_utf8(data)
    elif charset.codec == "iso2022_jp":  # ICU drops an ESC that starts no known designation
        text = _JIS_BAD_ESCAPES.sub(b"", data).decode(charset.codec, errors="ignore")
    else:
        text = data.decode(charset.codec, errors="ignore")
    if charset.codec == "shift_jis":
        text = text.translate(_JIS_ROMAN)
    return _ISO2022_CONTROLS.sub("", text) if charset.extensions else text


def _decode_utf8(data: bytes) -> str:
    """Decode UTF-8 like boost::locale's utf_to_utf with "skip": an invalid sequence is
    dropped together with the byte that revealed it."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    chars: list[str] = []
    pos, size = 0, len(data)
    while pos < size:
        lead = data[pos]
        pos += 1
        if lead < 0x80:
            chars.append(chr(lead))
            continue
        trail = 1 if 0xC2 <= lead < 0xE0 else 2 if 0xE0 <= lead < 0xF0 else 3
        if lead < 0xC2 or lead > 0xF4:
            continue
        code = lead & (0x3F >> trail)
        for _ in range(trail):
            if pos >= size or data[pos] & 0xC0 != 0x80:
                code = -1
                pos += pos < size
                break
            code = (code << 6) | (data[pos] & 0x3F)
            pos += 1
        minimum = (0x80, 0x800, 0x10000)[trail - 1]
        if minimum <= code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
            chars.append(chr(code))
    return "".join(chars)


def _trim_text(data: bytes, vr: str) -> bytes:
    """Trim a text value as DCMTK does on reading: padding, then end of the C string.
    An odd-length value gets a NUL pad first, so its trailing spaces stay."""
    if len(data) % 2:
        data += b"\0"
    data = data.translate(None, _C_SPACES.encode()) if vr == "UI" else data.rstrip(b" ")
    return data.split(b"\0", 1)[0]


def _join_values(value: Any) -> str:
    """Join an already-converted pydicom value into one backslash-separated string."""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_join_values(item) for item in value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin_1")
    original = getattr(value, "original_string", None)
    return original if isinstance(original, str) else str(value)


def _raw_bytes(elem: RawDataElement) -> bytes:
    return bytes(elem.value) if isinstance(elem.value, bytes | bytearray) else b""


def _format_number(value: int | float) -> str:
    """Print a number as Orthanc does: integers plainly, floats with 17 digits."""
    if isinstance(value, int):
        return str(value)
    if value != value:  # C++ streams keep the sign of NaN
        return "-nan" if struct.pack(">d", value)[0] & 0x80 else "nan"
    return f"{value:.17g}"


def _numbers(data: bytes, vr: str, little_endian: bool) -> str | None:
    """Decode binary numbers: every value if the length is a whole multiple, else the
    first one only (Orthanc's ApplyDcmtkToCTypeConverter); null if there is none."""
    code, size = _NUMERIC_VRS[vr]
    if len(data) < size:
        return None
    count = len(data) // size if len(data) % size == 0 else 1
    values = struct.unpack(("<" if little_endian else ">") + code * count, data[: count * size])
    return "\\".join(_format_number(v) for v in values)


def _value_from_bytes(data: bytes, vr: str, little_endian: bool, charset: _Charset) -> str | None:
    """String of a value whose VR is known, or None (Orthanc's null)."""
    if len(data) % 2 and vr not in _TEXT_VRS:
        data += b"\0"  # DCMTK pads odd-length values
    if vr in _TEXT_VRS:
        return _decode_text(_trim_text(data, vr), charset)
    if vr in _NUMERIC_VRS:
        return _numbers(data, vr, little_endian)
    if vr == "AT" and len(data) >= 4:  # only the first tag is shown
        group, element = struct.unpack("<HH" if little_endian else ">HH", data[:4])
        return f"{group:04x},{element:04x}"
    return None  # OB, OW, OF, OD, OL, OV, UN, unresolved "US or SS"...


def _private_creator(item: Dataset, tag: BaseTag) -> str | None:
    """The creator reserving the block of a private data element, if any."""
    block = tag.element >> 8
    if not tag.is_private or block < 0x10:
        return None
    elem = item.get_item((tag.group << 16) | block)
    if elem is None or elem.VR not in (None, "LO"):
        return None  # DCMTK only honours reservations encoded as LO
    if isinstance(elem, RawDataElement):
        data = _raw_bytes(elem)
    else:
        data = _join_values(elem.value).encode("latin_1", "replace")
    return _trim_text(data, "LO").decode("latin_1") or None


def _dictionary_vr(item: Dataset, tag: BaseTag, dictionary: DicomDictionary) -> str | None:
    """The VR the dictionary gives a tag, None if the tag (or its creator) is unknown."""
    if tag.element == 0:
        return "UL"
    if tag.is_private and 0x10 <= tag.element <= 0xFF:
        return "LO"
    entry = _entry(item, tag, dictionary)
    if entry is not None:
        return entry.vr
    if tag.is_private:
        return None
    try:
        return str(get_entry(tag)[0])
    except KeyError:
        return None


def _entry(item: Dataset, tag: BaseTag, dictionary: DicomDictionary) -> Any:
    """The entry of ``dictionary`` (DCMTK's private tags, the ``Dictionary`` option) for a
    tag of ``item``, if any."""
    if tag.is_private:
        creator = _private_creator(item, tag)
        if creator is not None:
            return dictionary.private_entry(tag, creator)
    return dictionary.public_entry(tag)


def _tag_name(item: Dataset, tag: BaseTag, dictionary: DicomDictionary) -> tuple[str, str | None]:
    """The name Orthanc shows for a tag, and the private creator of the element."""
    group, element = tag.group, tag.element
    if tag == _PIXEL_DATA:
        return "PixelData", None
    if group % 2:
        kind = "Illegal" if group < 8 else "Private"
        if element == 0:
            return kind + "GroupLength", None
        if 0x10 <= element <= 0xFF:
            return ("IllegalPrivateCreator" if group < 8 else "PrivateCreator"), None
        creator = _private_creator(item, tag)
        entry = _entry(item, tag, dictionary)
        return (entry.name if entry is not None else _UNKNOWN_NAME), creator
    if element == 0 and group not in (0x0000, 0x0002):
        return "GenericGroupLength", None
    entry = dictionary.public_entry(tag)
    if entry is not None:
        return entry.name, None
    try:
        _vr, _vm, _description, retired, keyword = get_entry(tag)
    except KeyError:
        return _UNKNOWN_NAME, None
    if not keyword:
        return _UNKNOWN_NAME, None
    return ("RETIRED_" if retired and tag not in _UNRETIRED_NAMES else "") + keyword, None


def _unknown_vr_value(item: Dataset, tag: BaseTag, data: bytes, ctx: _Context) -> str | None:
    """Orthanc's handling of explicit UN: text only if the dictionary says so."""
    if _dictionary_vr(item, tag, ctx.dictionary) not in _TEXT_VRS:
        return None
    if len(data) % 2 == 0 and data[-1:] == b"\0":
        data = data[:-1]
    if not tag.is_private:
        return _decode_text(data, ctx.charset)
    # Private text in UN is kept only if it is plain ASCII, and is not converted.
    return data.decode("ascii") if data.translate(None, _NON_ASCII) == data else None


def _implicit_vr(item: Dataset, tag: BaseTag, dictionary: DicomDictionary) -> str:
    """Resolve the VR of an implicit-VR element as DCMTK does."""
    vr = _dictionary_vr(item, tag, dictionary)
    if vr is None:
        return "UN"
    if vr != "US or SS":
        return vr
    representation = item.get_item(_PIXEL_REPRESENTATION)
    if tag not in _PIXEL_REPRESENTATION_TAGS or representation is None:
        return "xs"
    if isinstance(representation, RawDataElement):
        text = _numbers(_raw_bytes(representation), "US", representation.is_little_endian)
    else:
        text = _join_values(representation.value)
    if not text:
        return "xs"
    return "SS" if text.split("\\")[0] == "1" else "US"


def _converted_value(item: Dataset, tag: BaseTag, elem: DataElement, ctx: _Context) -> _Value:
    """Value of an element pydicom has already converted: re-encode it, then treat it
    like raw bytes (text is already decoded, except the ASCII charset element)."""
    vr, value, charset = elem.VR, elem.value, ctx.charset
    if vr == "SQ":
        return _Kind.SEQUENCE
    if isinstance(value, bytes | bytearray):
        if vr == "UN":
            return _unknown_vr_value(item, tag, bytes(value), ctx)
        return _value_from_bytes(bytes(value), vr, True, charset)
    if vr in _TEXT_VRS:
        text_charset = charset if tag == _SPECIFIC_CHARACTER_SET else _UTF8
        data = _join_values(value).encode(errors="replace")
        return _value_from_bytes(data, vr, True, text_charset)
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    values = [v for v in values if v is not None and v != ""]
    if vr in _NUMERIC_VRS:
        data = struct.pack("<" + _NUMERIC_VRS[vr][0] * len(values), *values)
    elif vr == "AT":
        data = b"".join(struct.pack("<HH", v.group, v.element) for v in map(BaseTag, values))
    else:
        return None
    return _value_from_bytes(data, vr, True, charset)


def _element_value(
    item: Dataset, tag: BaseTag, elem: DataElement | RawDataElement, ctx: _Context
) -> _Value:
    """String of one element, None for Orthanc's null, or the sequence marker."""
    try:
        if not isinstance(elem, RawDataElement):
            return _converted_value(item, tag, elem, ctx)
        vr = elem.VR
        if vr is None or vr == "UN":
            if elem.length == _UNDEFINED_LENGTH:
                return _Kind.SEQUENCE  # undefined length: read as a sequence
            if vr == "UN":
                return _unknown_vr_value(item, tag, _raw_bytes(elem), ctx)
            vr = _implicit_vr(item, tag, ctx.dictionary)
        if vr == "SQ":
            return _Kind.SEQUENCE
        return _value_from_bytes(_raw_bytes(elem), vr, elem.is_little_endian, ctx.charset)
    except Exception:  # malformed value: Orthanc shows null rather than failing
        return None


def _header(data: bytes, pos: int, little_endian: bool) -> tuple[int, int]:
    """Read a tag and a 4-byte length at ``pos``."""
    if pos + 8 > len(data):
        raise ValueError("truncated sequence")
    group, element, length = struct.unpack_from("<HHI" if little_endian else ">HHI", data, pos)
    return (group << 16) | element, length


def _item_end(data: bytes, pos: int, implicit: bool, little_endian: bool) -> int:
    """Position of the sequence delimiter closing the undefined-length value at ``pos``."""
    while True:
        tag, length = _header(data, pos, little_endian)
        if tag == _SEQUENCE_END:
            return pos
        if tag != _ITEM:
            raise ValueError("expected an item")
        if length == _UNDEFINED_LENGTH:
            pos = _parse_item(data, pos + 8, None, implicit, little_endian)[1]
        else:
            pos += 8 + length


def _parse_item(
    data: bytes, pos: int, end: int | None, implicit: bool, little_endian: bool
) -> tuple[Dataset, int]:
    """Parse the raw elements of one item, up to ``end`` or to its item delimiter."""
    fmt = "<" if little_endian else ">"
    elements: dict[BaseTag, DataElement | RawDataElement] = {}
    limit = len(data) if end is None else end
    while pos < limit:
        tag, length = _header(data, pos, little_endian)
        if tag == _ITEM_END:
            return Dataset(elements), pos + 8
        vr, start = None, pos + 8
        if not implicit:
            vr = data[pos + 4 : pos + 6].decode("ascii")
            if not (vr.isalpha() and vr.isupper()):
                raise ValueError("bad VR")
            if vr in _LONG_LENGTH_VRS:
                length, start = struct.unpack_from(fmt + "I", data, pos + 8)[0], pos + 12
            else:
                length = struct.unpack_from(fmt + "H", data, pos + 6)[0]
        if length == _UNDEFINED_LENGTH:
            stop = _item_end(data, start, implicit, little_endian)
            value, pos = data[start:stop], stop + 8
        else:
            value, pos = data[start : start + length], start + length
            if pos > limit:
                raise ValueError("truncated element")
        elements[BaseTag(tag)] = RawDataElement(
            BaseTag(tag), vr, length, value, start, implicit, little_endian, True
        )
    if end is None:
        raise ValueError("missing item delimiter")
    return Dataset(elements), pos


def _sequence_items(elem: DataElement | RawDataElement) -> list[Dataset] | None:
    """Items of a sequence; raw ones are split here rather than by pydicom's reader
    (which may warn on bad data). None if the sequence is malformed."""
    if not isinstance(elem, RawDataElement):
        value = elem.value
        return (
            [c for c in value if isinstance(c, Dataset)]
            if isinstance(value, DicomSequence | list)
            else None
        )
    data, little = _raw_bytes(elem), elem.is_little_endian
    items: list[Dataset] = []
    pos = 0
    try:
        while pos < len(data):
            tag, length = _header(data, pos, little)
            if tag == _SEQUENCE_END:
                break
            if tag != _ITEM:
                return None
            end = None if length == _UNDEFINED_LENGTH else pos + 8 + length
            item, pos = _parse_item(data, pos + 8, end, elem.is_implicit_VR, little)
            items.append(item)
    except (ValueError, struct.error, UnicodeDecodeError):
        return None
    return items


def raw_value(elem: DataElement | RawDataElement) -> bytes:
    """An element's value as DCMTK holds it: the bytes as stored, except that binary
    numbers of a big-endian file are given in little-endian order."""
    if isinstance(elem, RawDataElement):
        data = bytes(elem.value or b"")
        vr = elem.VR
        little = elem.is_little_endian
    else:  # converted by pydicom already: encode it again, little-endian
        from pydicom.filebase import DicomBytesIO
        from pydicom.filewriter import write_data_element

        buffer = DicomBytesIO()
        buffer.is_little_endian, buffer.is_implicit_VR = True, True
        write_data_element(buffer, elem)
        data, vr, little = buffer.getvalue()[8:], elem.VR, True
    size = _WORD_SIZES.get(vr or "")
    if not little and size and len(data) % size == 0:
        words = array.array({2: "H", 4: "I", 8: "Q"}[size], data)
        words.byteswap()
        data = words.tobytes()
    return data


def sequence_items(
    item: Dataset, tag: BaseTag, dictionary: DicomDictionary | None = None
) -> list[Dataset] | None:
    """The items of an element of ``item`` that DCMTK reads as a sequence (SQ, or UN of
    undefined length), None if it is no sequence, is absent or is malformed."""
    elem = item.get_item(tag)
    if elem is None:
        return None
    ctx = _Context(_charset(item), dictionary or default_dictionary())
    if _element_value(item, tag, elem, ctx) is not _Kind.SEQUENCE:
        return None
    return _sequence_items(elem)


def tag_value_to_string(
    ds: Dataset,
    elem_or_tag: DataElement | RawDataElement | TagType,
    *,
    encoding: str = DEFAULT_ENCODING,
) -> str | None:
    """Return the string Orthanc stores and shows for one element of ``ds``.

    Text is decoded with the dataset's SpecificCharacterSet and trimmed as DCMTK
    does, multiple values are joined with a backslash, binary numbers are printed in
    decimal.  Binary VRs, sequences, unparsable values and absent tags give None
    (Orthanc's null).  A tag that is not a valid tag or keyword raises ValueError.
    """
    if isinstance(elem_or_tag, DataElement | RawDataElement):
        elem: DataElement | RawDataElement | None = elem_or_tag
        tag = BaseTag(elem_or_tag.tag)
    else:
        tag = Tag(elem_or_tag)
        elem = ds.get_item(tag)
    if elem is None:
        return None
    value = _element_value(ds, tag, elem, _Context(_charset(ds, encoding), default_dictionary()))
    return value if isinstance(value, str) else None


def main_dicom_tags(ds: Dataset, level: str, *, encoding: str = DEFAULT_ENCODING) -> dict[str, str]:
    """Return the ``MainDicomTags`` Orthanc stores for ``level`` ("Patient", "Study",
    "Series" or "Instance"), keyword -> string, sorted by keyword like Orthanc's JSON.

    A tag present with an empty value gives ""; a tag whose value is null for Orthanc
    (binary, unparsable) or longer than 256 UTF-8 bytes is left out, as Orthanc does
    not store it.
    """
    if level not in MAIN_DICOM_TAGS:
        raise ValueError(f"unknown resource level: {level!r}")
    ctx = _Context(_charset(ds, encoding), default_dictionary())
    result: dict[str, str] = {}
    for tag in MAIN_DICOM_TAGS[level]:
        elem = ds.get_item(tag)
        value = None if elem is None else _element_value(ds, tag, elem, ctx)
        if isinstance(value, str) and len(value.encode(errors="replace")) <= _MAIN_TAG_MAX_LENGTH:
            result[keyword_for_tag(tag)] = value
    return dict(sorted(result.items()))


class _Limits(NamedTuple):
    """Which strings are "TooLong": longer than ``max_length`` UTF-8 bytes (0: no limit),
    except for the tags of ``ignore_length``."""

    max_length: int
    ignore_length: frozenset[int]

    def too_long(self, tag: BaseTag, value: str) -> bool:
        return bool(
            self.max_length
            and len(value.encode(errors="replace")) > self.max_length
            and int(tag) not in self.ignore_length
        )


def _full_json(item: Dataset, ctx: _Context, limits: _Limits, top: bool) -> dict[str, Any]:
    """Orthanc's "full" JSON of a dataset or sequence item, keys in tag order."""
    result: dict[str, Any] = {}
    for tag in map(BaseTag, sorted(item.keys())):
        elem = item.get_item(tag)
        if elem is None or (top and tag > _PIXEL_DATA):
            continue  # Orthanc stops after the pixel data
        try:
            name, creator = _tag_name(item, tag, ctx.dictionary)
        except Exception:  # defensive: a dictionary lookup should not fail
            name, creator = _UNKNOWN_NAME, None
        key = f"{tag.group:04x},{tag.element:04x}"
        value = _element_value(item, tag, elem, ctx)
        if value is _Kind.SEQUENCE:
            children = _sequence_items(elem)
            if children is not None:
                nodes = [_full_json(child, ctx, limits, False) for child in children]
                result[key] = {"Name": name, "Type": "Sequence", "Value": nodes}
                continue
            value = None
        node: dict[str, Any] = {"Name": name}
        if creator is not None:
            node["PrivateCreator"] = creator
        if not isinstance(value, str):
            node.update(Type="Null", Value=None)
        elif limits.too_long(tag, value):
            node.update(Type="TooLong", Value=None)
        else:
            node.update(Type="String", Value=value)
        result[key] = node
    return result


def simplify(full: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The "simplified" or "short" form of a "full" DICOM-as-JSON (``fmt`` "full" gives it
    back as it is)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown DICOM-as-JSON format: {fmt!r}")
    return full if fmt == "full" else _simplify(full, fmt == "simplified")


def _simplify(full: dict[str, Any], by_name: bool) -> dict[str, Any]:
    """Derive the "simplified" (keyed by name) or "short" (by tag) form from the full
    one, as Orthanc does; with duplicate names the last element wins."""
    result: dict[str, Any] = {}
    for key, node in full.items():
        value = node["Value"]  # None for Null and TooLong
        if node["Type"] == "Sequence":
            value = [_simplify(child, by_name) for child in value]
        result[node["Name"] if by_name else key] = value
    return dict(sorted(result.items()))


def dataset_to_json(
    ds: Dataset,
    fmt: str,
    *,
    max_length: int = 256,
    has_pixel_data: bool = False,
    encoding: str = DEFAULT_ENCODING,
    ignore_length: frozenset[int] = frozenset(),
    dictionary: DicomDictionary | None = None,
) -> dict[str, Any]:
    """Return Orthanc's DICOM-as-JSON for ``ds``: ``fmt`` "full" is ``/tags``,
    "simplified" is ``/tags?simplify`` and ``/simplified-tags``, "short" is ``/tags?short``.

    The file meta information (``ds.file_meta``) is not shown, nor are top-level
    elements after the pixel data.  Strings longer than ``max_length`` UTF-8 bytes
    (0: no limit) are "TooLong" (null when simplified), main DICOM tags included, unless
    their tag is in ``ignore_length``.
    ``has_pixel_data=True`` adds the null PixelData entry Orthanc shows when ``ds``
    was read without its pixel data.  Raises ValueError for an unknown ``fmt``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown DICOM-as-JSON format: {fmt!r}")
    ctx = _Context(_charset(ds, encoding), dictionary or default_dictionary())
    full = _full_json(ds, ctx, _Limits(max_length, ignore_length), True)
    if has_pixel_data and "7fe0,0010" not in full:
        full["7fe0,0010"] = {"Name": "PixelData", "Type": "Null", "Value": None}
    return simplify(full, fmt)
