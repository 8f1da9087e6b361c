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
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import deflate

from ..errors import BadRequest, CorruptedFile, InexistentFile
from .journal import WriteJournal

log = logging.getLogger(__name__)

COMPRESSION_NONE = 1
COMPRESSION_ZLIB_WITH_SIZE = 2

_SIZE_HEADER = struct.Struct("<Q")
CHUNK_SIZE = 1024 * 1024  # streamed reads and writes go by this many bytes


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


class _StreamEncoder:
    """Turns chunks of content of a known length into the bytes to store (raw, or Orthanc's
    zlib-with-size format), computing both MD5s on the way."""

    def __init__(self, length: int, compress: bool, level: int, store_md5: bool) -> None:
        self.length = length
        self.size = 0
        self.stored_size = 0
        # Empty content compresses to an empty file, as in Orthanc.
        self._deflater = zlib.compressobj(level) if compress and length else None
        self._md5 = hashlib.md5(usedforsecurity=False) if store_md5 else None
        self._stored_md5 = hashlib.md5(usedforsecurity=False) if store_md5 and compress else None

    def start(self) -> bytes:
        return self._stored(_SIZE_HEADER.pack(self.length)) if self._deflater else b""

    def encode(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        if self.size > self.length:
            raise BadRequest("The request body is longer than its Content-Length")
        if self._md5 is not None:
            self._md5.update(chunk)
        if self._deflater is None:
            self.stored_size += len(chunk)
            return chunk
        return self._stored(self._deflater.compress(chunk))

    def finish(self) -> bytes:
        if self.size != self.length:
            raise BadRequest("The request body is shorter than its Content-Length")
        return self._stored(self._deflater.flush()) if self._deflater is not None else b""

    def _stored(self, data: bytes) -> bytes:
        self.stored_size += len(data)
        if self._stored_md5 is not None:
            self._stored_md5.update(data)
        return data

    def md5s(self) -> tuple[str, str]:
        """The MD5 of the content and of the stored bytes ("" when MD5s are not stored)."""
        if self._md5 is None:
            return "", ""
        md5 = self._md5.hexdigest()
        return md5, self._stored_md5.hexdigest() if self._stored_md5 is not None else md5


Chunks = Generator[bytes, None, None]


def _copy_range(f: BinaryIO, start: int, end: int) -> Chunks:
    """Bytes ``start`` to ``end`` (exclusive) of a raw stored file, chunk by chunk."""
    f.seek(start)
    left = end - start
    while left > 0:
        chunk = f.read(min(CHUNK_SIZE, left))
        if not chunk:
            raise CorruptedFile("stored file is shorter than recorded")
        left -= len(chunk)
        yield chunk


def _inflate_range(f: BinaryIO, start: int, end: int) -> Chunks:
    """Bytes ``start`` to ``end`` of the content of a zlib-with-size file, decompressed
    incrementally so that memory stays at a few chunks whatever the file's size."""
    if end <= start:
        return
    f.seek(_SIZE_HEADER.size)
    inflater = zlib.decompressobj()
    position = 0
    while position < end and not inflater.eof:
        data = inflater.unconsumed_tail or f.read(CHUNK_SIZE)
        if not data:
            break
        try:
            out = inflater.decompress(data, CHUNK_SIZE)
        except zlib.error as exc:
            raise CorruptedFile(f"cannot decompress stored file: {exc}") from exc
        low, high = max(start - position, 0), min(end - position, len(out))
        if low < high:
            yield out[low:high]
        position += len(out)
    if position < end:
        raise CorruptedFile("decompressed size differs from the recorded size")


class FileChunks:
    """An open stored file served chunk by chunk. The file is opened at once (so a missing
    file is an error before anything is sent) and closed by :meth:`close`, which WSGI
    servers call even when the client goes away mid-way."""

    def __init__(self, f: BinaryIO, chunks: Chunks) -> None:
        self._file = f
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self._chunks.close()
        self._file.close()


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

    def write_stream(
        self, chunks: Iterable[bytes], length: int, content_type: int, compress: bool
    ) -> FileInfo:
        """Store ``length`` bytes arriving as ``chunks`` (an upload being received), holding
        one chunk at a time. Like :meth:`write`, the file stays journaled until :meth:`settle`;
        if the chunks fail or do not add up to ``length``, nothing is left behind."""
        file_uuid = str(uuidlib.uuid4())
        encoder = _StreamEncoder(length, compress, self.compression_level, self.store_md5)
        path = self._final_path(file_uuid)
        self._ensure_dir(path.parent)
        token = self._journal.add(file_uuid)
        try:
            with open(path, "xb") as f:
                f.write(encoder.start())
                for chunk in chunks:
                    f.write(encoder.encode(chunk))
                f.write(encoder.finish())
        except BaseException:
            path.unlink(missing_ok=True)
            self._journal.settle([token])
            raise
        md5, stored_md5 = encoder.md5s()
        compression = COMPRESSION_ZLIB_WITH_SIZE if compress else COMPRESSION_NONE
        return FileInfo(
            file_uuid,
            content_type,
            compression,
            length,
            encoder.stored_size,
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
    def _open(self, file_uuid: str) -> BinaryIO:
        try:
            return open(self._final_path(self._check_uuid(file_uuid)), "rb")
        except FileNotFoundError:
            raise InexistentFile(
                f"stored file {file_uuid} is missing from the storage area"
            ) from None

    def open_range(self, info: FileInfo, start: int = 0, end: int | None = None) -> FileChunks:
        """The content (uncompressed) from ``start`` to ``end`` (exclusive; None: the end),
        read lazily chunk by chunk. An open file stays readable even if the attachment is
        replaced or deleted meanwhile."""
        stop = info.uncompressed_size if end is None else end
        f = self._open(info.uuid)
        if info.compression == COMPRESSION_ZLIB_WITH_SIZE:
            return FileChunks(f, _inflate_range(f, start, stop))
        return FileChunks(f, _copy_range(f, start, stop))

    def open_stored(self, info: FileInfo) -> FileChunks:
        """The bytes as stored (compressed if the file is), read lazily chunk by chunk."""
        f = self._open(info.uuid)
        return FileChunks(f, _copy_range(f, 0, info.compressed_size))

    def read_stored(self, file_uuid: str) -> bytes:
        """The bytes as stored (compressed if the file is compressed)."""
        with self._open(file_uuid) as f:
            return f.read()

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
