"""Archives and media: the ZIP files of stored instances that Orthanc's ``/archive``,
``/media``, ``/tools/create-archive`` and ``/tools/create-media`` produce.

An archive is planned first (:meth:`ArchiveService.plan`): the resources asked for are
merged into one patient → study → series → instance tree, as Orthanc does (a resource and
one of its descendants count once), and every instance gets its name in the ZIP. An archive
has Orthanc 1.10.1's folders, ``{PatientID} {PatientName}/{AccessionNumber}
{StudyDescription}/{Modality} {SeriesDescription}/MR000000.dcm``; a media has
``IMAGES/IM0``, ``IMAGES/IM1``... and a DICOMDIR. The plan is then streamed
(:meth:`ArchiveService.stream`): each instance is read from the store chunk by chunk and
deflated into the ZIP as it is sent, so memory stays at a chunk whatever the archive's size.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pydicom
from pydicom.uid import UID

from ..errors import BadRequest, InexistentFile, ParameterOutOfRange, UnknownResource
from ..storage.index import Index
from ..storage.store import FileChunks, FileInfo, FileStore
from .dicomdir import DicomDir
from .model import ContentType, Level, Metadata, Resource
from .zipstream import ZipStream

log = logging.getLogger(__name__)

MEDIA_FOLDER = "IMAGES"
# Deflate level of archive members. Level 1 is about ten times faster than zlib's default
# on CT images, for a ZIP 3% larger.
COMPRESSION_LEVEL = 1

_FOLDER_TAGS = {
    Level.PATIENT: ("PatientID", "PatientName"),
    Level.STUDY: ("AccessionNumber", "StudyDescription"),
    Level.SERIES: ("Modality", "SeriesDescription"),
}


def keep_alphanumeric(text: str) -> str:
    """Orthanc's ZIP names: ``^`` is a space, runs of spaces are one, only ASCII letters,
    digits, ``.`` and ``_`` stay, and the ends are trimmed."""
    out: list[str] = []
    space = False
    for c in text.replace("^", " "):
        if not c.isascii():
            continue
        if c in " \t\n\v\f\r":
            if not space:
                out.append(" ")
                space = True
        elif c.isalnum() or c in "._":
            out.append(c)
            space = False
    return "".join(out).strip(" ")


def folder_name(level: Level, tags: dict[str, str]) -> str:
    """The folder of a patient, study or series in an archive (Orthanc's two main tags,
    or "Unknown Patient"...)."""
    first, second = (tags.get(k, "") for k in _FOLDER_TAGS[level])
    name = "".join(c for c in f"{first} {second}" if c.isascii() and c.isprintable()).strip()
    return name or f"Unknown {level.title}"


def instance_name_format(modality: str) -> str:
    """The name of the n-th instance of a series, from the series' modality: ``MR000000.dcm``
    (two letters), ``M0000000.dcm`` (one), ``00000000.dcm`` (none)."""
    prefix = modality[:2].upper()
    return prefix + "{:0" + str(8 - len(prefix)) + "d}.dcm"


def is_transfer_syntax(uid: str) -> bool:
    try:
        return UID(uid).is_transfer_syntax
    except ValueError:  # a UID pydicom cannot classify
        return False


@dataclass(frozen=True)
class ArchiveEntry:
    """One instance of an archive: its name in the ZIP and its size when planned."""

    path: str
    instance: Resource
    size: int


@dataclass
class ArchivePlan:
    """What an archive will hold, in order."""

    entries: list[ArchiveEntry]
    media: bool
    extended: bool = False
    transcode: str | None = None

    @property
    def instances_count(self) -> int:
        return len(self.entries)

    @property
    def uncompressed_size(self) -> int:
        return sum(e.size for e in self.entries)


@dataclass
class _Node:
    """Orthanc's archive index: below a patient, study or series, its children by public ID
    (None: "all of it", expanded later); below a series, the instances."""

    level: Level
    children: dict[str, _Node | None] = field(default_factory=dict)
    instances: list[tuple[Resource, int]] = field(default_factory=list)


class _Planner:
    def __init__(self, index: Index) -> None:
        self.index = index

    def lookup(self, public_id: str) -> Resource:
        resource = self.index.lookup(public_id)
        if resource is None:
            raise UnknownResource(empty_body=False)  # Orthanc gives no details
        return resource

    def chain(self, resource: Resource) -> list[str]:
        """The public IDs from the patient down to ``resource``."""
        ids = [resource.public_id]
        current = resource
        while current.parent_public_id is not None:
            ids.append(current.parent_public_id)
            current = self.lookup(current.parent_public_id)
        return ids[::-1]

    def add(self, node: _Node, chain: list[str]) -> None:
        public_id = chain[node.level]
        if node.level is Level.INSTANCE:
            self.add_instance(node, public_id)
        elif len(chain) == node.level + 1:
            node.children[public_id] = None  # the whole resource
        elif public_id not in node.children:
            child = _Node(Level(node.level + 1))
            self.add(child, chain)
            node.children[public_id] = child
        else:
            below = node.children[public_id]
            if below is not None:
                self.add(below, chain)

    def add_instance(self, node: _Node, public_id: str) -> None:
        resource = self.index.lookup(public_id)
        entry = self.index.attachment_entry(resource, ContentType.Dicom) if resource else None
        if resource is not None and entry is not None:
            node.instances.append((resource, entry[0].uncompressed_size))

    def expand(self, node: _Node) -> None:
        if node.level is Level.INSTANCE:
            return
        for public_id, child in list(node.children.items()):
            if child is None:
                child = _Node(Level(node.level + 1))
                resource = self.index.lookup(public_id)
                for child_id in self.index.children(resource) if resource else []:
                    if child.level is Level.INSTANCE:
                        self.add_instance(child, child_id)
                    else:
                        child.children[child_id] = None
                node.children[public_id] = child
            self.expand(child)


class _Names:
    """Orthanc's unique names: a second file or folder of the same name in one folder
    becomes ``name-2``, then ``name-3``."""

    def __init__(self) -> None:
        self._folders: list[dict[str, int]] = [{}]
        self._path: list[str] = []

    def _unique(self, name: str) -> str:
        name = keep_alphanumeric(name)
        seen = self._folders[-1]
        count = seen.get(name, 0) + 1
        seen[name] = count
        return name if count == 1 else f"{name}-{count}"

    def open(self, name: str) -> None:
        self._path.append(self._unique(name))
        self._folders.append({})

    def close(self) -> None:
        self._path.pop()
        self._folders.pop()

    def file(self, name: str) -> str:
        return "".join(f"{p}/" for p in self._path) + self._unique(name)


def _archive_entries(planner: _Planner, root: _Node) -> list[ArchiveEntry]:
    entries: list[ArchiveEntry] = []
    names = _Names()

    def visit(node: _Node) -> None:
        for public_id in sorted(node.children):
            child = node.children[public_id]
            assert child is not None
            resource = planner.index.lookup(public_id)
            tags = resource.main_tags if resource else {}
            names.open(folder_name(node.level, tags))
            if node.level is Level.SERIES:
                format_ = instance_name_format(tags.get("Modality", ""))
                for number, (instance, size) in enumerate(child.instances):
                    entries.append(ArchiveEntry(names.file(format_.format(number)), instance, size))
            else:
                visit(child)
            names.close()

    visit(root)
    return entries


def _media_entries(root: _Node) -> list[ArchiveEntry]:
    instances: list[tuple[Resource, int]] = []

    def visit(node: _Node) -> None:
        for public_id in sorted(node.children):
            child = node.children[public_id]
            assert child is not None
            if child.level is Level.INSTANCE:
                instances.extend(child.instances)
            else:
                visit(child)

    visit(root)
    return [
        ArchiveEntry(f"{MEDIA_FOLDER}/IM{number}", instance, size)
        for number, (instance, size) in enumerate(instances)
    ]


class _StoreReader(io.RawIOBase):
    """A stored file as a seekable binary file, read lazily (for pydicom to read a header
    without the pixel data); seeking reopens the file at the new position."""

    def __init__(self, store: FileStore, info: FileInfo) -> None:
        self._store = store
        self._info = info
        self._position = 0
        self._chunks: FileChunks | None = None
        self._iterator: Iterator[bytes] | None = None
        self._pending = memoryview(b"")

    @property
    def name(self) -> str:
        return self._info.uuid

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position}.get(
            whence, self._info.uncompressed_size
        )
        target = min(max(base + offset, 0), self._info.uncompressed_size)
        if target != self._position:
            self._drop()
            self._position = target
        return self._position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            if self._iterator is None:
                self._chunks = self._store.open_range(self._info, self._position)
                self._iterator = iter(self._chunks)
            self._pending = memoryview(next(self._iterator, b""))
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self._position += count
        return count

    def _drop(self) -> None:
        if self._chunks is not None:
            self._chunks.close()
        self._chunks = self._iterator = None
        self._pending = memoryview(b"")

    def close(self) -> None:
        self._drop()
        super().close()


class ArchiveService:
    """Plans and streams archives and media of stored resources."""

    def __init__(self, index: Index, store: FileStore) -> None:
        self.index = index
        self.store = store

    def plan(
        self,
        resources: list[str],
        *,
        media: bool,
        extended: bool = False,
        transcode: str | None = None,
    ) -> ArchivePlan:
        """What the archive of ``resources`` (IDs of any level, mixed) holds. An unknown ID
        is a 404 before anything is sent. ``transcode`` must be a transfer syntax; until
        transcoding is implemented, only the one every instance is already stored in."""
        planner = _Planner(self.index)
        root = _Node(Level.PATIENT)
        for public_id in resources:
            planner.add(root, planner.chain(planner.lookup(public_id)))
        planner.expand(root)
        entries = _media_entries(root) if media else _archive_entries(planner, root)
        plan = ArchivePlan(entries, media, extended, transcode)
        if transcode is not None:
            self._check_transcode(plan, transcode)
        return plan

    def _check_transcode(self, plan: ArchivePlan, syntax: str) -> None:
        if not is_transfer_syntax(syntax):
            raise ParameterOutOfRange(f"Unknown transfer syntax: {syntax}")
        for entry in plan.entries:
            stored = self.index.metadata_entry(entry.instance, Metadata.TransferSyntax)
            if stored is None or stored[0] != syntax:
                current = stored[0] if stored else "unknown"
                raise BadRequest(
                    f"Transcoding is not supported yet: instance {entry.instance.public_id} "
                    f"is stored in {current}, not in {syntax}"
                )

    def stream(
        self,
        plan: ArchivePlan,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[bytes]:
        """The ZIP's bytes, produced as they are consumed. An instance deleted since the
        plan is left out (as Orthanc does); ``on_progress(done, archive_bytes)`` follows."""
        zip_stream = ZipStream(COMPRESSION_LEVEL)
        dicomdir = DicomDir(plan.extended) if plan.media else None
        for done, entry in enumerate(plan.entries, start=1):
            info = self._current_file(entry.instance)
            if info is not None:
                try:
                    chunks = self.store.open_range(info)
                except InexistentFile:
                    info = None
            if info is None:
                log.warning(
                    "An instance was removed after the archive was planned: %s",
                    entry.instance.public_id,
                )
                continue
            try:
                if dicomdir is not None:
                    self._record(dicomdir, entry, info)
                yield from zip_stream.member(entry.path, info.uncompressed_size, chunks)
            finally:
                chunks.close()
            if on_progress is not None:
                on_progress(done, zip_stream.size)
        if dicomdir is not None:
            yield zip_stream.add("DICOMDIR", dicomdir.encode())
        yield zip_stream.finish()

    def _current_file(self, instance: Resource) -> FileInfo | None:
        entry = self.index.attachment_entry(instance, ContentType.Dicom)
        return entry[0] if entry is not None else None

    def _record(self, dicomdir: DicomDir, entry: ArchiveEntry, info: FileInfo) -> None:
        with io.BufferedReader(_StoreReader(self.store, info), 64 * 1024) as reader:
            ds = pydicom.dcmread(reader, stop_before_pixels=True, force=True)
        stored = self.index.metadata_entry(entry.instance, Metadata.TransferSyntax)
        dicomdir.add(ds, entry.path.split("/"), stored[0] if stored else None)
