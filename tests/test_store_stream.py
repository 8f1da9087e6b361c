"""The file store's streaming write and ranged read (what large attachments go through)."""

from __future__ import annotations

import hashlib
import os
import random
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomd.errors import BadRequest, CorruptedFile
from dicomd.storage.store import (
    COMPRESSION_NONE,
    COMPRESSION_ZLIB_WITH_SIZE,
    FileInfo,
    FileStore,
    decompress_zlib_with_size,
)
from storefiles import stored_files

# Incompressible, compressible and repetitive parts, several chunks long in total.
CONTENT = os.urandom(1_500_000) + bytes(2_000_000) + b"attachment" * 100_000


def pieces(data: bytes, size: int = 65_536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def read_all(store: FileStore, info: FileInfo, start: int = 0, end: int | None = None) -> bytes:
    chunks = store.open_range(info, start, end)
    try:
        return b"".join(chunks)
    finally:
        chunks.close()


@pytest.mark.parametrize("compress", [False, True])
def test_stream_round_trip(tmp_path: Path, compress: bool) -> None:
    store = FileStore(tmp_path)
    info = store.write_stream(pieces(CONTENT), len(CONTENT), 1024, compress)
    store.settle([info], committed=True)
    stored = store.read_stored(info.uuid)
    assert info.compression == (COMPRESSION_ZLIB_WITH_SIZE if compress else COMPRESSION_NONE)
    assert (info.uncompressed_size, info.compressed_size) == (len(CONTENT), len(stored))
    assert info.uncompressed_md5 == hashlib.md5(CONTENT).hexdigest()
    assert info.compressed_md5 == hashlib.md5(stored).hexdigest()
    if compress:
        # Orthanc's format: the size as 8 bytes little-endian, then one zlib stream.
        assert struct.unpack("<Q", stored[:8])[0] == len(CONTENT)
        assert zlib.decompress(stored[8:]) == CONTENT
        assert decompress_zlib_with_size(stored) == CONTENT
        assert len(stored) < len(CONTENT)
    assert store.read(info) == CONTENT
    raw = store.open_stored(info)
    assert b"".join(raw) == stored
    raw.close()


@pytest.mark.parametrize("compress", [False, True])
def test_ranges(tmp_path: Path, compress: bool) -> None:
    store = FileStore(tmp_path)
    info = store.write_stream([CONTENT], len(CONTENT), 1024, compress)
    rng = random.Random(3)
    for _ in range(20):
        start = rng.randrange(len(CONTENT))
        end = rng.randrange(start, len(CONTENT) + 1)
        assert read_all(store, info, start, end) == CONTENT[start:end]
    assert read_all(store, info, len(CONTENT) - 1) == CONTENT[-1:]
    assert read_all(store, info, 5, 5) == b""


@pytest.mark.parametrize("compress", [False, True])
def test_empty_content(tmp_path: Path, compress: bool) -> None:
    store = FileStore(tmp_path)
    info = store.write_stream([], 0, 1024, compress)
    assert info.compressed_size == 0 and store.read_stored(info.uuid) == b""
    assert read_all(store, info) == b""
    assert info.uncompressed_md5 == info.compressed_md5 == hashlib.md5(b"").hexdigest()


@pytest.mark.parametrize("declared", [10, 3])
def test_length_mismatch_leaves_nothing(tmp_path: Path, declared: int) -> None:
    store = FileStore(tmp_path)
    with pytest.raises(BadRequest):
        store.write_stream([b"hello"], declared, 1024, True)
    assert stored_files(tmp_path) == []
    store.close()
    assert list((tmp_path / ".journal").glob("*.log")) == []  # the entry was settled


def test_failing_source_leaves_nothing(tmp_path: Path) -> None:
    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionError("client went away")

    store = FileStore(tmp_path)
    with pytest.raises(ConnectionError):
        store.write_stream(broken(), 100, 1024, False)
    assert stored_files(tmp_path) == []


def test_without_md5(tmp_path: Path) -> None:
    store = FileStore(tmp_path, store_md5=False)
    info = store.write_stream([b"abc"], 3, 1024, True)
    assert (info.uncompressed_md5, info.compressed_md5) == ("", "")


def test_truncated_compressed_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    info = store.write_stream([CONTENT], len(CONTENT), 1024, True)
    path = stored_files(tmp_path)[0]
    path.write_bytes(path.read_bytes()[: info.compressed_size // 2])
    with pytest.raises(CorruptedFile):
        read_all(store, info)
