"""The file store: attachment bytes on disk, addressed by an opaque UUID, optionally compressed.

Files live under ``StorageDirectory`` in a two-level fan-out (``ab/cd/abcd...``) as Orthanc lays
them out. Compressed files use Orthanc's "zlib with size" format: the uncompressed size as
8 bytes little-endian, then a zlib stream.

A crash never leaves a file without an index row for long: each file being written is listed
in a write journal until its index transaction settles, and :meth:`FileStore.recover`
deletes, at the next start, the listed files that the index does not know.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
import uuid as uuidlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import deflate

from ..errors import CorruptedFile, InexistentFile
from .journal import WriteJournal

log = logging.getLogger(__name__)

COMPRESSION_NONE = 1
COMPRESSION_ZLIB_WITH_SIZE = 2

_SIZE_HEADER = struct.Struct("<Q")


@dataclass(frozen=True)
class FileInfo:
    """What the index records about one stored file (an Orthanc "attachment")."""

    uuid: str
    content_type: int
    compression: int
    uncompressed_size: int
    compressed_size: int
    uncompressed_md5: str
    compressed_md5: str
    journal: str = field(default="", compare=False)  # the write-journal entry, until settled


def compress_zlib_with_size(data: bytes, level: int) -> bytes:
    """Orthanc's compressed storage format; an empty buffer stands for empty content.

    libdeflate writes a standard zlib stream (any zlib reads it back) about twice as fast
    as zlib at level 1, and smaller; it releases the GIL, so uploads compress in parallel.
    """
    if not data:
        return b""
    return _SIZE_HEADER.pack(len(data)) + deflate.zlib_compress(data, level)


def decompress_zlib_with_size(blob: bytes) -> bytes:
    if not blob:
        return b""
    if len(blob) < _SIZE_HEADER.size:
        raise CorruptedFile("compressed file is shorter than its size header")
    (size,) = _SIZE_HEADER.unpack_from(blob)
    try:
        data = deflate.zlib_decompress(memoryview(blob)[_SIZE_HEADER.size :], size)
    except deflate.DeflateError as exc:
        raise CorruptedFile(f"cannot decompress stored file: {exc}") from exc
    if len(data) != size:
        raise CorruptedFile("decompressed size differs from the recorded size")
    return bytes(data)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuidlib.UUID(text)) == text
    except ValueError:
        return False


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class FileStore:
    """Bytes on a local (or shared) file system, one file per attachment."""

    def __init__(self, root: Path, *, compression_level: int = 1, store_md5: bool = True) -> None:
        self.root = root
        self.compression_level = compression_level
        self.store_md5 = store_md5
        self._journal = WriteJournal(root / ".journal")
        self._known_dirs: set[str] = set()
        self._dirs_lock = threading.Lock()

    # -- paths -----------------------------------------------------------------------------
    def _final_path(self, file_uuid: str) -> Path:
        return self.root / file_uuid[0:2] / file_uuid[2:4] / file_uuid

    @staticmethod
    def _check_uuid(file_uuid: str) -> str:
        # The UUID comes from the index, never from a request, but a path is built from it:
        # accept only the canonical form.
        return str(uuidlib.UUID(file_uuid))

    # -- writing ---------------------------------------------------------------------------
    def write(self, data: bytes, content_type: int, compress: bool) -> FileInfo:
        """Store ``data`` as a new file. It stays in the write journal until :meth:`settle`:
        call it once the index transaction that records the file has committed or failed."""
        file_uuid = str(uuidlib.uuid4())
        if compress:
            stored = compress_zlib_with_size(data, self.compression_level)
            compression = COMPRESSION_ZLIB_WITH_SIZE
        else:
            stored = data
            compression = COMPRESSION_NONE
        md5 = _md5(data) if self.store_md5 else ""
        stored_md5 = (_md5(stored) if compress else md5) if self.store_md5 else ""
        path = self._final_path(file_uuid)
        self._ensure_dir(path.parent)
        token = self._journal.add(file_uuid)
        try:
            with open(path, "xb") as f:
                f.write(stored)
        except BaseException:
            path.unlink(missing_ok=True)
            self._journal.settle([token])
            raise
        return FileInfo(
            file_uuid,
            content_type,
            compression,
            len(data),
            len(stored),
            md5,
            stored_md5,
            journal=token,
        )

    def settle(self, files: Iterable[FileInfo], *, committed: bool) -> None:
        """The index transaction recording ``files`` committed (keep them) or not (delete)."""
        files = list(files)
        if not committed:
            self.remove(f.uuid for f in files)
        self._journal.settle(f.journal for f in files if f.journal)

    def _ensure_dir(self, directory: Path) -> None:
        key = str(directory)
        if key in self._known_dirs:
            return
        directory.mkdir(parents=True, exist_ok=True)
        with self._dirs_lock:
            self._known_dirs.add(key)

    # -- reading ---------------------------------------------------------------------------
    def read_stored(self, file_uuid: str) -> bytes:
        """The bytes as stored (compressed if the file is compressed)."""
        try:
            with open(self._final_path(self._check_uuid(file_uuid)), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise InexistentFile(
                f"stored file {file_uuid} is missing from the storage area"
            ) from None

    def read(self, info: FileInfo) -> bytes:
        """The uncompressed content of a stored file."""
        blob = self.read_stored(info.uuid)
        if info.compression == COMPRESSION_ZLIB_WITH_SIZE:
            return decompress_zlib_with_size(blob)
        return blob

    # -- removing --------------------------------------------------------------------------
    def remove(self, file_uuids: Iterable[str]) -> None:
        """Delete files whose index rows are gone. Missing files are not an error."""
        for file_uuid in file_uuids:
            try:
                self._final_path(self._check_uuid(file_uuid)).unlink(missing_ok=True)
            except OSError as exc:
                log.error("cannot delete stored file %s: %s", file_uuid, exc)

    # -- crash recovery --------------------------------------------------------------------
    def recover(self, committed: Callable[[list[str]], set[str]]) -> int:
        """Delete the files that earlier processes were writing when they died and that the
        index does not know. ``committed`` answers which UUIDs have a row. Only call when no
        other process writes to this store. Returns the number of files deleted."""
        deleted = 0
        for path, uuids in self._journal.leftovers():
            valid = [u for u in uuids if _is_uuid(u)]
            known = committed(valid) if valid else set()
            orphans = [u for u in valid if u not in known]
            self.remove(orphans)
            deleted += len(orphans)
            path.unlink()
        return deleted

    def close(self) -> None:
        self._journal.close()
