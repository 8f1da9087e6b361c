"""Attachments: the files attached to a patient, study, series or instance, as Orthanc's
``/{level}/{id}/attachments`` serves them.

System attachments (``dicom``, ``dicom-until-pixel-data``...) are written by the ingest
pipeline and are read-only here; user attachments (content types 1024..65535, named by
``UserContentType``) can be written, replaced and deleted, with revisions. Contents are
streamed in and out chunk by chunk, so a large attachment never sits whole in memory. REST
views and scripts call this one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..errors import BadRequest, PayloadTooLarge, Revision, UnknownResource
from ..storage.index import Index, RevisionCheck
from ..storage.store import COMPRESSION_NONE, FileChunks, FileInfo, FileStore
from .model import Level, Resource
from .registry import ContentTypeNames
from .resources import MEGABYTE, ResourceService
from .revisions import delete_check, etag, write_check


@dataclass(frozen=True)
class Attachment:
    """One attachment of one resource, with its revision, as the index holds it."""

    resource: Resource
    info: FileInfo
    revision: int

    @property
    def etag(self) -> str:
        """Orthanc's ETag of an attachment: its revision and its uncompressed MD5."""
        return etag(self.revision, self.info.uncompressed_md5)

    @property
    def is_compressed(self) -> bool:
        return self.info.compression != COMPRESSION_NONE

    def operations(self) -> list[str]:
        """``GET …/attachments/{name}``: what can be asked of it (MD5 ones only if stored)."""
        md5, stored_md5 = self.info.uncompressed_md5, self.info.compressed_md5
        names = ["compress", "compressed-data", "compressed-md5" if stored_md5 else ""]
        names += ["compressed-size", "data", "info", "is-compressed", "md5" if md5 else ""]
        names += ["size", "uncompress", "verify-md5" if md5 and stored_md5 else ""]
        return [name for name in names if name]

    def md5(self, stored: bool) -> str:
        """The MD5 of the content, or of the stored bytes; 404 if MD5s were not stored."""
        value = self.info.compressed_md5 if stored else self.info.uncompressed_md5
        if not value:
            raise _no_answer("No MD5 is stored for this attachment")
        return value

    def describe(self) -> dict[str, Any]:
        """``GET …/info``."""
        return {
            "Uuid": self.info.uuid,
            "ContentType": self.info.content_type,
            "UncompressedSize": self.info.uncompressed_size,
            "CompressedSize": self.info.compressed_size,
            "UncompressedMD5": self.info.uncompressed_md5,
            "CompressedMD5": self.info.compressed_md5,
        }


def _no_answer(what: str) -> UnknownResource:
    # Orthanc 1.10.1 describes an unknown resource or an absent attachment (a JSON 404).
    return UnknownResource(what, empty_body=False)


class AttachmentService:
    """Lists, reads, writes and deletes attachments, and changes how they are stored."""

    def __init__(
        self, index: Index, store: FileStore, resources: ResourceService, config: Config
    ) -> None:
        self.index = index
        self.store = store
        self.resources = resources
        self.names = ContentTypeNames(config.user_content_types)
        self.compress = config.storage_compression
        self.check_revisions = config.check_revisions
        self.max_size = config.maximum_attachment_size * MEGABYTE  # 0: no limit

    # -- reads -----------------------------------------------------------------------------
    def list_names(self, level: Level, public_id: str, full: bool) -> list[str] | dict[str, int]:
        """The attachments' names (a user type without a name shows its number); ``full``
        maps each name to its number."""
        resource = self.index.get(level, public_id)
        if resource is None:
            raise _no_answer(f"Unknown {level.title.lower()}: {public_id}")
        numbers = sorted(self.index.attachments(resource))
        if full:
            return {self.names.name(n): n for n in numbers}
        return [self.names.name(n) for n in numbers]

    def _resource(self, public_id: str) -> Resource:
        """The resource an attachment URI names. As in Orthanc, only the listing checks the
        level of the URI: ``/patients/{id of an instance}/attachments/dicom`` is the
        instance's."""
        resource = self.index.lookup(public_id)
        if resource is None:
            raise _no_answer(f"Unknown resource: {public_id}")
        return resource

    def get(self, level: Level, public_id: str, name: str) -> Attachment:
        """One attachment, by name or number. An unknown name is InexistentItem, an unknown
        resource or an absent attachment UnknownResource (both 404 with a JSON body)."""
        number = self.names.number(name)
        resource = self._resource(public_id)
        entry = self.index.attachment_entry(resource, number)
        if entry is None:
            raise _no_answer(f"No attachment {name} on {public_id}")
        return Attachment(resource, *entry)

    def mime(self, attachment: Attachment) -> str:
        """The MIME type ``…/data`` is served with (``UserContentType``'s, or a default)."""
        return self.names.mime(attachment.info.content_type)

    def read(self, attachment: Attachment, start: int = 0, end: int | None = None) -> FileChunks:
        """The content (uncompressed), or bytes ``start`` to ``end`` (exclusive) of it."""
        return self.store.open_range(attachment.info, start, end)

    def read_stored(self, attachment: Attachment) -> FileChunks:
        """The bytes as stored: compressed in Orthanc's zlib-with-size format if it is."""
        return self.store.open_stored(attachment.info)

    # -- writes ----------------------------------------------------------------------------
    def put(
        self,
        level: Level,
        public_id: str,
        name: str,
        body: Iterable[bytes],
        length: int,
        if_match: str | None,
        *,
        check_revisions: bool | None = None,
    ) -> str:
        """Store ``length`` bytes arriving as ``body`` as a user attachment (new or
        replacing one, subject to ``If-Match``); returns its new ETag. A body over
        ``MaximumAttachmentSize`` is refused before any of it is read."""
        number = self.names.writable(name)
        resource = self._resource(public_id)
        if self.max_size and length > self.max_size:
            raise PayloadTooLarge(
                f"The attachment ({length} bytes) exceeds MaximumAttachmentSize "
                f"({self.max_size // MEGABYTE} MB)"
            )
        enforce = self.check_revisions if check_revisions is None else check_revisions
        check = write_check(if_match, enforce)
        info = self.store.write_stream(body, length, number, self.compress)
        revision = self._record(resource, info, check)
        return etag(revision, info.uncompressed_md5)

    def delete(self, level: Level, public_id: str, name: str, if_match: str | None) -> None:
        """Delete a user attachment (subject to ``If-Match``) and its file."""
        number = self.names.writable(name)
        resource = self._resource(public_id)
        outcome = self.index.delete_attachment(
            resource, number, delete_check(if_match, self.check_revisions)
        )
        if outcome is None:
            raise _no_answer(f"No attachment {name} on {public_id}")
        self._remove(outcome[1])

    def set_compression(self, level: Level, public_id: str, name: str, compressed: bool) -> None:
        """``POST …/compress`` and ``…/uncompress``: store the content again in the other
        format (any attachment, as in Orthanc). Size and MD5 stay; the revision grows."""
        attachment = self.get(level, public_id, name)
        if attachment.is_compressed == compressed:
            return
        chunks = self.read(attachment)
        try:
            info = self.store.write_stream(
                chunks, attachment.info.uncompressed_size, attachment.info.content_type, compressed
            )
        finally:
            chunks.close()
        self._record(attachment.resource, info, _unchanged(attachment))

    def verify_md5(self, level: Level, public_id: str, name: str) -> None:
        """Check the stored bytes and the content against their MD5s. As in Orthanc, a
        mismatch, missing MD5s or an absent attachment is an empty 400 (a POST that
        answers nothing); an unknown resource is a 404."""
        number = self.names.number(name)
        resource = self._resource(public_id)
        entry = self.index.attachment_entry(resource, number)
        if entry is None or not (entry[0].compressed_md5 and entry[0].uncompressed_md5):
            raise BadRequest(f"No attachment {name} with MD5s on {public_id}", empty_body=True)
        attachment = Attachment(resource, *entry)
        info = attachment.info
        ok = _md5_of(self.read_stored(attachment)) == info.compressed_md5
        if ok and attachment.is_compressed:
            ok = _md5_of(self.read(attachment)) == info.uncompressed_md5
        if not ok:
            raise BadRequest(f"The attachment {name} of {public_id} has a bad MD5", empty_body=True)

    # -- helpers ---------------------------------------------------------------------------
    def _record(self, resource: Resource, info: FileInfo, check: RevisionCheck) -> int:
        """Index a freshly written file; it is deleted again if that fails. The file it
        replaces is deleted once the index no longer points to it."""
        try:
            revision, _change, replaced = self.index.set_attachment(resource, info, check)
        except BaseException:
            self.store.settle([info], committed=False)
            raise
        self.store.settle([info], committed=True)
        self._remove(replaced)
        return revision

    def _remove(self, uuids: list[str]) -> None:
        if uuids:
            self.store.remove(uuids)
            self.index.forget_files(uuids)


def _unchanged(attachment: Attachment) -> RevisionCheck:
    """A check that the attachment is still the one that was read (not replaced or deleted
    by another writer while it was being re-stored)."""

    def check(current: tuple[int, str] | None) -> None:
        if current is None:
            raise _no_answer("The attachment was deleted meanwhile")
        if current != (attachment.revision, attachment.info.uncompressed_md5):
            raise Revision("The attachment was changed meanwhile")

    return check


def _md5_of(chunks: FileChunks) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    try:
        for chunk in chunks:
            digest.update(chunk)
    finally:
        chunks.close()
    return digest.hexdigest()
