"""The DICOM data dictionary dicomd names and decodes tags with, as Orthanc's DCMTK does.

Public tags come from pydicom's dictionary (its names match DCMTK 3.6.7's). Private tags come
from DCMTK's own dictionary of private tags (``dcmtk-private.dic``, shipped unchanged), since
pydicom's private dictionary names tags differently and knows others; Orthanc loads DCMTK's
with ``LoadPrivateDictionary`` (true by default). The ``Dictionary`` option adds or replaces
entries, public or private, as in Orthanc.

A private entry applies to the elements of one private block: ``(0029,"SIEMENS CSA HEADER",10)``
names (0029,xx10) in whichever block the creator reserved; an entry with a full element
number, like those of the ``Dictionary`` option, applies to that element only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

from pydicom.datadict import keyword_dict
from pydicom.tag import BaseTag
from pydicom.valuerep import VR

from ..errors import ConfigError

__all__ = [
    "DicomDictionary",
    "Entry",
    "default_dictionary",
    "parse_dictionary_option",
    "parse_tag",
]


class Entry(NamedTuple):
    """What the dictionary says of a tag: its VR (as DCMTK writes it) and its name."""

    vr: str
    name: str


_LINE = re.compile(
    r'\((?P<group>[0-9a-fA-F]{4})(?:-o-(?P<upper>[0-9a-fA-F]{4}))?,"(?P<creator>[^"]*)",'
    r"(?P<element>[0-9a-fA-F]{2}|[0-9a-fA-F]{4})\)$"
)


@dataclass(frozen=True)
class DicomDictionary:
    """Tag names and VRs beyond pydicom's public dictionary: private entries by (group,
    creator, element) and public ones from the ``Dictionary`` option."""

    # (group, creator, element) -> entry; element is the low byte (any block) or a full one.
    private: Mapping[tuple[int, str, int], Entry] = field(default_factory=dict)
    # Entries for the odd groups of a range (DCMTK's "6001-o-60ff"): (low, high, creator, el).
    private_ranges: tuple[tuple[int, int, str, int, Entry], ...] = ()
    public: Mapping[int, Entry] = field(default_factory=dict)

    def private_entry(self, tag: BaseTag, creator: str) -> Entry | None:
        """The entry of a private data element whose block ``creator`` reserved."""
        group, element = tag.group, tag.element
        entry = self.private.get((group, creator, element))
        if entry is None:
            entry = self.private.get((group, creator, element & 0xFF))
        if entry is None:
            for low, high, name, el, candidate in self.private_ranges:
                if low <= group <= high and name == creator and el in (element, element & 0xFF):
                    return candidate
        return entry

    def public_entry(self, tag: BaseTag) -> Entry | None:
        """An entry the ``Dictionary`` option gives a public tag (pydicom's otherwise)."""
        return self.public.get(int(tag))

    def with_option(self, option: Mapping[int | tuple[int, str], Entry]) -> DicomDictionary:
        """This dictionary plus the parsed ``Dictionary`` option (entries replace ours)."""
        private = dict(self.private)
        public = dict(self.public)
        for key, entry in option.items():
            if isinstance(key, tuple):
                tag, creator = key
                private[(tag >> 16, creator, tag & 0xFFFF)] = entry
            else:
                public[key] = entry
        return DicomDictionary(private, self.private_ranges, public)


def _parse_dic(text: str) -> DicomDictionary:
    private: dict[tuple[int, str, int], Entry] = {}
    ranges: list[tuple[int, int, str, int, Entry]] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        match = _LINE.match(fields[0])
        if match is None or len(fields) < 3:
            continue
        entry = Entry(fields[1], "".join(fields[2].split()))  # DCMTK drops spaces in names
        group, element = int(match["group"], 16), int(match["element"], 16)
        if match["upper"]:
            ranges.append((group, int(match["upper"], 16), match["creator"], element, entry))
        else:
            private[(group, match["creator"], element)] = entry
    return DicomDictionary(private, tuple(ranges))


@cache
def _dcmtk_private() -> DicomDictionary:
    text = resources.files(__package__).joinpath("dcmtk-private.dic").read_text("latin-1")
    return _parse_dic(text)


def default_dictionary(
    load_private: bool = True, option: Mapping[int | tuple[int, str], Entry] | None = None
) -> DicomDictionary:
    """The dictionary of a configuration: DCMTK's private tags if ``load_private``
    (``LoadPrivateDictionary``), plus the parsed ``Dictionary`` option."""
    base = _dcmtk_private() if load_private else DicomDictionary()
    return base.with_option(option) if option else base


_HEX_TAG = re.compile(r"([0-9a-fA-F]{4})[-,]?([0-9a-fA-F]{4})$")


def parse_tag(text: str, dictionary: DicomDictionary | None = None) -> int:
    """A tag as Orthanc reads one: ``gggg,eeee``, ``gggg-eeee``, ``ggggeeee`` or a name of
    the dictionary (a keyword, or a name the ``Dictionary`` option gives). ValueError if
    it is none of these."""
    match = _HEX_TAG.match(text)
    if match:
        return int(match[1] + match[2], 16)
    if text in keyword_dict:
        return int(keyword_dict[text])
    if dictionary is not None:
        for tag, entry in dictionary.public.items():
            if entry.name == text:
                return tag
    raise ValueError(f"unknown DICOM tag: {text!r}")


def _parse_tag(key: str, text: str) -> int:
    try:
        return parse_tag(text.strip())
    except ValueError:
        raise ConfigError(f'"{key}": "{text}" is not a DICOM tag') from None


_VRS = frozenset(str(vr) for vr in VR if len(str(vr)) == 2)  # the standard's VRs


def parse_dictionary_option(key: str, value: Any) -> dict[int | tuple[int, str], Entry]:
    """Orthanc's ``Dictionary`` option: ``{"gggg,eeee": [VR, Name, MinVM, MaxVM,
    PrivateCreator]}`` (the last three may be left out). A private tag with a creator names
    that element of a block the creator reserved; without one, only an element no creator
    reserved, as in DCMTK."""
    if not isinstance(value, dict):
        raise ConfigError(f'"{key}" must be an object mapping tags to [VR, Name, ...]')
    result: dict[int | tuple[int, str], Entry] = {}
    for text, spec in value.items():
        where = f"{key}.{text}"
        tag = _parse_tag(where, text)
        types = (str, str, int, int, str)
        if (
            not isinstance(spec, list)
            or not 2 <= len(spec) <= 5
            or not all(
                isinstance(s, t) and not isinstance(s, bool)
                for s, t in zip(spec, types, strict=False)
            )
        ):
            raise ConfigError(f'"{where}" must be a list [VR, Name, MinVM, MaxVM, Creator]')
        if spec[0] not in _VRS:
            raise ConfigError(f'"{where}": "{spec[0]}" is not a value representation')
        entry = Entry(spec[0], spec[1])
        creator = spec[4] if len(spec) > 4 else ""
        group = tag >> 16
        if creator:
            if group % 2 == 0 or group in (0x0001, 0x0003, 0x0005, 0x0007, 0xFFFF):
                raise ConfigError(f'"{where}": a private tag needs an odd group from 0009')
            result[(tag, creator)] = entry
        else:
            result[tag] = entry
    return result
