"""The file store: attachment bytes on disk, addressed by an opaque UUID, optionally compressed.

Files live under ``StorageDirectory`` in a two-level fan-out (``ab/cd/abcd...``) as Orthanc lays
them out. Compressed files use Orthanc's "zlib with size" format: the uncompressed size as
8 bytes little-endian, then a zlib stream.

Writes are two-phase so that a crash never leaves a file without an index row: a new file is
written to ``.staging/``, the index transaction commits, then the file is published (renamed)
to its final place. :meth:`FileStore.recover` finishes or undoes what a crash interrupted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import threading
import uuid as uuidlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import deflate

from ..errors import CorruptedFile, InexistentFile

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


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class FileStore:
    """Bytes on a local (or shared) file system, one file per attachment."""

    def __init__(self, root: Path, *, compression_level: int = 1, store_md5: bool = True) -> None:
        self.root = root
        self.compression_level = compression_level
        self.store_md5 = store_md5
        self._staging = root / ".staging"
        self._staging.mkdir(parents=True, exist_ok=True)
        self._known_dirs: set[str] = set()
        self._dirs_lock = threading.Lock()

    # -- paths -----------------------------------------------------------------------------
    def _final_path(self, file_uuid: str) -> Path:
        return self.root / file_uuid[0:2] / file_uuid[2:4] / file_uuid

    def _staging_path(self, file_uuid: str) -> Path:
        return self._staging / file_uuid

    @staticmethod
    def _check_uuid(file_uuid: str) -> str:
        # The UUID comes from the index, never from a request, but a path is built from it:
        # accept only the canonical form.
        return str(uuidlib.UUID(file_uuid))

    # -- writing ---------------------------------------------------------------------------
    def stage(self, data: bytes, content_type: int, compress: bool) -> FileInfo:
        """Write ``data`` to the staging area; it is invisible until :meth:`publish`."""
        file_uuid = str(uuidlib.uuid4())
        if compress:
            stored = compress_zlib_with_size(data, self.compression_level)
            compression = COMPRESSION_ZLIB_WITH_SIZE
        else:
            stored = data
            compression = COMPRESSION_NONE
        md5 = _md5(data) if self.store_md5 else ""
        stored_md5 = (_md5(stored) if compress else md5) if self.store_md5 else ""
        with open(self._staging_path(file_uuid), "xb") as f:
            f.write(stored)
        return FileInfo(
            file_uuid, content_type, compression, len(data), len(stored), md5, stored_md5
        )

    def publish(self, file_uuids: Iterable[str]) -> None:
        """Move staged files to their final place, once the index has committed them."""
        for file_uuid in file_uuids:
            final = self._final_path(file_uuid)
            self._ensure_dir(final.parent)
            os.replace(self._staging_path(file_uuid), final)

    def discard(self, file_uuids: Iterable[str]) -> None:
        """Drop staged files whose index transaction did not happen."""
        for file_uuid in file_uuids:
            self._staging_path(file_uuid).unlink(missing_ok=True)

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
        self._check_uuid(file_uuid)
        for path in (self._final_path(file_uuid), self._staging_path(file_uuid)):
            # A file is in staging only between the index commit and its publication.
            try:
                with open(path, "rb") as f:
                    return f.read()
            except FileNotFoundError:
                continue
        raise InexistentFile(f"stored file {file_uuid} is missing from the storage area")

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
    def staged_uuids(self) -> list[str]:
        return [p.name for p in self._staging.iterdir() if p.is_file()]

    def recover(self, committed: Callable[[list[str]], set[str]]) -> tuple[int, int]:
        """Finish what a crash interrupted: publish staged files the index knows, drop others.

        ``committed`` answers which of the given UUIDs have an index row. Returns the numbers
        of files published and discarded.
        """
        staged = self.staged_uuids()
        if not staged:
            return 0, 0
        known = committed(staged)
        self.publish(u for u in staged if u in known)
        self.discard(u for u in staged if u not in known)
        return len(known), len(staged) - len(known)

    def disk_usage(self) -> int:
        """Apparent size of every published file (for checks and benchmarks)."""
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            if Path(dirpath) == self._staging:
                continue
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
        return total
