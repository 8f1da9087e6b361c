"""What an instance's DICOM file says, as Orthanc's REST API shows it: its tags (``/tags``,
``/simplified-tags``, ``/header``), the tags its instances share or the module of a level
(``/shared-tags``, ``/module``, ``/instances-tags``), the raw value of any element
(``/content/...``), its frames, and the main DICOM tags re-read from the files
(``/reconstruct``).

Tags are always read from the stored file (never from a cached summary), stopping before the
pixel data when the pixel data offset is known, so a change of ``Dictionary`` or of the
default encoding shows at once.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import pydicom
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from ..errors import BadFileFormat, UnknownDicomTag, UnknownResource
from ..storage.index import Index
from ..storage.store import FileStore
from .dicomjson import (
    dataset_to_json,
    main_dicom_tags,
    raw_value,
    sequence_items,
    simplify,
    tag_value_to_string,
)
from .dicomweb import dicomweb_json
from .dictionary import DicomDictionary, parse_tag
from .model import ContentType, Level, Metadata, Resource

_PIXEL_DATA = BaseTag(0x7FE00010)
_NUMBER_OF_FRAMES = BaseTag(0x00280008)
_TRANSFER_SYNTAX = BaseTag(0x00020010)
_SOP_CLASS_UID = BaseTag(0x00080016)
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Transfer syntaxes of videos: one frame whatever NumberOfFrames says (MPEG-2, MPEG-4, HEVC).
_VIDEO_SYNTAXES = frozenset(
    ["1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101"]
    + [f"1.2.840.10008.1.2.4.{n}" for n in range(102, 109)]
)


def _keywords(text: str) -> frozenset[int]:
    from pydicom.datadict import tag_for_keyword

    return frozenset(int(tag_for_keyword(k) or 0) for k in text.split())


#: The modules of Orthanc's ``/module`` routes: the attributes of PS3.3's Patient Module
#: (C.7-1 with the Issuer of Patient ID macro), General Study (C.7-3), General Series (C.7-5,
#: with the Performed Procedure Step Summary macro) and SOP Common (C.12-1, with the Digital
#: Signatures macro) modules. Orthanc lists (0029,0109) where the standard has Largest Pixel
#: Value in Series (0028,0109); so does dicomd, to answer the same.
MODULES: dict[str, frozenset[int]] = {
    "Patient": _keywords(
        "PatientName PatientID PatientBirthDate PatientSex ReferencedPatientSequence"
        " PatientBirthTime OtherPatientIDs OtherPatientIDsSequence OtherPatientNames EthnicGroup"
        " PatientComments PatientSpeciesDescription PatientSpeciesCodeSequence"
        " PatientBreedDescription PatientBreedCodeSequence BreedRegistrationSequence"
        " ResponsiblePerson ResponsiblePersonRole ResponsibleOrganization PatientIdentityRemoved"
        " DeidentificationMethod DeidentificationMethodCodeSequence IssuerOfPatientID"
        " IssuerOfPatientIDQualifiersSequence"
    ),
    "Study": _keywords(
        "StudyInstanceUID StudyDate StudyTime ReferringPhysicianName"
        " ReferringPhysicianIdentificationSequence StudyID AccessionNumber"
        " IssuerOfAccessionNumberSequence StudyDescription PhysiciansOfRecord"
        " PhysiciansOfRecordIdentificationSequence NameOfPhysiciansReadingStudy"
        " PhysiciansReadingStudyIdentificationSequence RequestingServiceCodeSequence"
        " ReferencedStudySequence ProcedureCodeSequence ReasonForPerformedProcedureCodeSequence"
    ),
    "Series": _keywords(
        "Modality SeriesInstanceUID SeriesNumber Laterality SeriesDate SeriesTime"
        " PerformingPhysicianName PerformingPhysicianIdentificationSequence ProtocolName"
        " SeriesDescription SeriesDescriptionCodeSequence OperatorsName"
        " OperatorIdentificationSequence ReferencedPerformedProcedureStepSequence"
        " RelatedSeriesSequence BodyPartExamined PatientPosition SmallestPixelValueInSeries"
        " RequestAttributesSequence AnatomicalOrientationType PerformedProcedureStepID"
        " PerformedProcedureStepStartDate PerformedProcedureStepStartTime"
        " PerformedProcedureStepDescription PerformedProtocolCodeSequence"
        " CommentsOnThePerformedProcedureStep"
    )
    | {0x00290109},
    "Instance": _keywords(
        "SOPClassUID SOPInstanceUID SpecificCharacterSet InstanceCreationDate"
        " InstanceCreationTime InstanceCreatorUID RelatedGeneralSOPClassUID"
        " OriginalSpecializedSOPClassUID CodingSchemeIdentificationSequence"
        " TimezoneOffsetFromUTC ContributingEquipmentSequence InstanceNumber SOPInstanceStatus"
        " SOPAuthorizationDateTime SOPAuthorizationComment"
        " AuthorizationEquipmentCertificationNumber EncryptedAttributesSequence"
        " OriginalAttributesSequence HL7StructuredDocumentReferenceSequence"
        " LongitudinalTemporalInformationModified MACParametersSequence"
        " DigitalSignaturesSequence"
    ),
}


class Resources(Protocol):
    """What this service uses of the resource service (which owns it)."""

    index: Index
    store: FileStore
    encoding: Callable[[], str]

    def get(self, level: Level, public_id: str) -> Resource: ...

    def children(
        self, level: Level, public_id: str, child_level: Level, expand: bool
    ) -> list[Any]: ...

    def instance_file(self, public_id: str) -> bytes: ...


def _read(data: bytes, whole: bool) -> Dataset:
    return _parse(data, whole)[0]


def _parse(data: bytes, whole: bool) -> tuple[Dataset, bool]:
    """The dataset (up to its pixel data unless ``whole``), and whether pixel data follow
    where parsing stopped."""
    stream = io.BytesIO(data)
    try:
        ds = pydicom.dcmread(stream, stop_before_pixels=not whole, force=True)
    except Exception as exc:  # pydicom raises many kinds of errors on broken files
        raise BadFileFormat(f"Cannot parse the stored DICOM file: {exc}") from exc
    position = stream.tell()
    return ds, data[position : position + 4] in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")


class ContentService:
    """Reads instances' DICOM files for the content routes of the REST API."""

    def __init__(self, resources: Resources, dictionary: DicomDictionary) -> None:
        self.resources = resources
        self.index = resources.index
        self.store = resources.store
        self.dictionary = dictionary

    # -- reading files ---------------------------------------------------------------------
    def _instance(self, public_id: str) -> Resource:
        return self.resources.get(Level.INSTANCE, public_id)

    def _dicom_until_pixels(self, instance: Resource) -> tuple[bytes, bool]:
        """The file up to its pixel data, and whether it has pixel data; the whole file,
        and False, when the offset is not known."""
        files = self.index.attachments(instance)
        offset = self.index.metadata(instance).get(Metadata.PixelDataOffset)
        header = files.get(ContentType.DicomUntilPixelData)
        if header is not None:
            return self.store.read(header), True
        dicom = files.get(ContentType.Dicom)
        if dicom is None:
            raise UnknownResource(f"Instance {instance.public_id} has no DICOM file")
        if offset is not None and offset.isdigit():
            chunks = self.store.open_range(dicom, 0, int(offset))
            try:
                return b"".join(chunks), True
            finally:
                chunks.close()
        return self.store.read(dicom), False

    def _dicom(self, instance: Resource) -> bytes:
        return self.resources.instance_file(instance.public_id)

    def _full_tags(self, instance: Resource, ignore_length: frozenset[int]) -> dict[str, Any]:
        data, has_pixels = self._dicom_until_pixels(instance)
        ds, pixels_follow = _parse(data, whole=False)
        return dataset_to_json(
            ds,
            "full",
            has_pixel_data=has_pixels or pixels_follow,
            encoding=self.resources.encoding(),
            ignore_length=ignore_length,
            dictionary=self.dictionary,
        )

    def _instances(self, level: Level, public_id: str) -> list[Resource]:
        """The instances under a resource, in the index's order (resources deleted meanwhile
        are left out)."""
        ids = self.resources.children(level, public_id, Level.INSTANCE, expand=False)
        found = (self.index.get(Level.INSTANCE, i) for i in ids)
        return [r for r in found if r is not None]

    def parse_tags(self, texts: Iterable[str]) -> frozenset[int]:
        """Tags as Orthanc's arguments give them (``0018-1020``, ``00181020``,
        ``SoftwareVersions``, comma-separated lists); UnknownDicomTag for a name that no
        dictionary knows."""
        return frozenset(self.tag(part) for text in texts for part in text.split(",") if part)

    # -- tags ------------------------------------------------------------------------------
    def instance_tags(
        self, public_id: str, fmt: str, ignore_length: frozenset[int] = frozenset()
    ) -> dict[str, Any]:
        """``/tags`` (``fmt`` "full"), ``?simplify`` ("simplified") or ``?short``; values
        longer than 256 bytes are "TooLong", except those of ``ignore_length``."""
        return simplify(self._full_tags(self._instance(public_id), ignore_length), fmt)

    def instances_tags(
        self, level: Level, public_id: str, fmt: str, ignore_length: frozenset[int]
    ) -> dict[str, Any]:
        """``/{level}/{id}/instances-tags``: the tags of every instance below, by ID."""
        return {
            instance.public_id: simplify(self._full_tags(instance, ignore_length), fmt)
            for instance in self._instances(level, public_id)
        }

    def shared_tags(self, level: Level, public_id: str, fmt: str) -> dict[str, Any]:
        """``/{level}/{id}/shared-tags``: the top-level string values that every instance
        below has, and has equal."""
        shared: dict[str, Any] | None = None
        for instance in self._instances(level, public_id):
            try:
                tags = self._full_tags(instance, frozenset())
            except UnknownResource:
                continue  # deleted meanwhile
            strings = {k: v for k, v in tags.items() if v["Type"] == "String"}
            if shared is None:
                shared = strings
            else:
                shared = {
                    k: v
                    for k, v in shared.items()
                    if k in strings and strings[k]["Value"] == v["Value"]
                }
        return simplify(shared or {}, fmt)

    def module(
        self, level: Level, public_id: str, module: str, fmt: str, ignore_length: frozenset[int]
    ) -> dict[str, Any]:
        """``/{level}/{id}/module`` and ``/studies/{id}/module-patient``: the attributes of a
        module, read from the first instance below the resource."""
        instances = self._instances(level, public_id)
        if not instances:
            return {}
        tags = self._full_tags(instances[0], ignore_length)
        keys = {f"{tag >> 16:04x},{tag & 0xFFFF:04x}" for tag in MODULES[module]}
        return simplify({k: v for k, v in tags.items() if k in keys}, fmt)

    def header(self, public_id: str, fmt: str) -> dict[str, Any]:
        """``/instances/{id}/header``: the file meta information, in ASCII, binary values
        left out, no length limit."""
        data, _has_pixels = self._dicom_until_pixels(self._instance(public_id))
        meta = getattr(_read(data, whole=False), "file_meta", None) or Dataset()
        full = dataset_to_json(
            meta, "full", max_length=0, encoding="Ascii", dictionary=self.dictionary
        )
        return simplify({k: v for k, v in full.items() if v["Type"] != "Null"}, fmt)

    def dicomweb_json(self, public_id: str) -> dict[str, Any] | None:
        """The instance in DICOMweb's JSON (PS3.18 F.2), binary values inline, as ``/file``
        answers ``Accept: application/dicom+json``; None if Orthanc would fail and send
        the file itself."""
        ds = _read(self._dicom(self._instance(public_id)), whole=True)
        return dicomweb_json(ds, self.dictionary, self.resources.encoding())

    # -- raw content and frames ------------------------------------------------------------
    def content(self, public_id: str, path: list[str]) -> list[str] | bytes:
        """``/instances/{id}/content/...``: the tags of a dataset (a list), the indexes of a
        sequence's items or of the pixel data's fragments (a list), or an element's raw
        value (bytes, numbers in little-endian order)."""
        ds = _read(self._dicom(self._instance(public_id)), whole=True)
        tags = [self.tag(part) for part in path[::2]]
        missing = UnknownResource(f"No such element: /{'/'.join(path)}", empty_body=True)
        if len(path) in (1, 2) and tags[0] == _PIXEL_DATA:
            return _pixel_data(ds, path[1] if len(path) == 2 else None, missing)
        item = ds
        for tag, index in zip(tags, path[1::2], strict=False):
            items = sequence_items(item, tag, self.dictionary)
            if items is None or not index.isdigit() or int(index) >= len(items):
                raise missing
            item = items[int(index)]
        if len(path) % 2 == 0:
            return [f"{t.group:04x}-{t.element:04x}" for t in map(BaseTag, sorted(item.keys()))]
        elem = item.get_item(tags[-1])
        if elem is None:
            raise missing
        items = sequence_items(item, tags[-1], self.dictionary)
        if items is not None:
            return [str(i) for i in range(len(items))]
        return raw_value(elem)

    def tag(self, text: str) -> BaseTag:
        """A tag of a URI or an argument, UnknownDicomTag if it is none."""
        try:
            return BaseTag(parse_tag(text, self.dictionary))
        except ValueError:
            raise UnknownDicomTag() from None

    def frames(self, public_id: str) -> list[int]:
        """``/instances/{id}/frames``: the frame indexes, from NumberOfFrames (one frame when
        absent; a video is one frame)."""
        instance = self._instance(public_id)
        syntax = self.index.metadata(instance).get(Metadata.TransferSyntax, "")
        if syntax in _VIDEO_SYNTAXES:
            return [0]
        data, _has_pixels = self._dicom_until_pixels(instance)
        ds = _read(data, whole=False)
        elem = ds.get_item(_NUMBER_OF_FRAMES)
        if elem is None:
            return [0]
        text = tag_value_to_string(ds, elem)
        try:
            count = int(text) if text is not None else -1
        except ValueError:
            count = -1
        if count < 0:
            raise BadFileFormat(f"Bad NumberOfFrames in instance {public_id}: {text!r}")
        return list(range(count))

    # -- reconstruction --------------------------------------------------------------------
    def reconstruct(self, level: Level | None, public_id: str = "") -> None:
        """``/{level}/{id}/reconstruct`` (``/tools/reconstruct`` with ``level`` None: every
        study): read the files again and replace, for each instance in turn, the main DICOM
        tags of the instance and its parents, and its TransferSyntax and SopClassUid
        metadata. The last instance read decides its parents' tags, as in Orthanc."""
        if level is None:
            for study in self.index.list_ids(Level.STUDY):
                if self.index.exists(Level.STUDY, study):
                    self.reconstruct(Level.STUDY, study)
            return
        for instance in self._instances(level, public_id):
            try:
                data, _has_pixels = self._dicom_until_pixels(instance)
            except UnknownResource:
                continue  # deleted meanwhile
            ds = _read(data, whole=False)
            encoding = self.resources.encoding()
            tags = {lv: main_dicom_tags(ds, lv.title, encoding=encoding) for lv in Level}
            metadata: dict[int, str] = {}
            meta = getattr(ds, "file_meta", None)
            syntax = meta.get_item(_TRANSFER_SYNTAX) if meta is not None else None
            if meta is not None and syntax is not None:
                value = tag_value_to_string(meta, syntax)
                if value:
                    metadata[Metadata.TransferSyntax] = value
            sop_class = tag_value_to_string(ds, _SOP_CLASS_UID, encoding=encoding)
            if sop_class is not None:
                metadata[Metadata.SopClassUid] = sop_class
            self.index.reconstruct_instance(instance, tags, metadata)


def _pixel_data(ds: Dataset, block: str | None, missing: UnknownResource) -> list[str] | bytes:
    """``/content/7fe0-0010``: the fragments of encapsulated pixel data (the basic offset
    table first), or one block of native pixel data."""
    elem = ds.get_item(_PIXEL_DATA)
    if elem is None:
        raise missing
    data = bytes(elem.value or b"") if isinstance(elem, RawDataElement) else bytes(elem.value)
    encapsulated = getattr(elem, "length", 0) == _UNDEFINED_LENGTH or (
        isinstance(elem, DataElement) and elem.is_undefined_length
    )
    fragments = _fragments(data) if encapsulated else None
    count = len(fragments) if fragments is not None else 1
    if block is None:
        return [str(i) for i in range(count)]
    if not block.isdigit() or int(block) >= count:
        raise missing
    if fragments is None:
        return raw_value(elem)
    return fragments[int(block)]


def _fragments(data: bytes) -> list[bytes] | None:
    """The items of an encapsulated pixel data value (its delimiter left out)."""
    fragments: list[bytes] = []
    pos = 0
    while pos + 8 <= len(data):
        tag, length = struct.unpack_from("<II", data, pos)
        if tag == 0xE0DDFFFE:  # sequence delimiter (group FFFE, element E0DD)
            break
        if tag != 0xE000FFFE or pos + 8 + length > len(data):
            return None
        fragments.append(data[pos + 8 : pos + 8 + length])
        pos += 8 + length
    return fragments
