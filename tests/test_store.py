"""The file store: Orthanc's compressed format and crash recovery."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from dicomd.errors import CorruptedFile
from dicomd.storage.store import (
    COMPRESSION_ZLIB_WITH_SIZE,
    FileStore,
    compress_zlib_with_size,
    decompress_zlib_with_size,
)


def test_zlib_with_size_format() -> None:
    data = b"DICM" * 1000
    blob = compress_zlib_with_size(data, 1)
    assert struct.unpack("<Q", blob[:8])[0] == len(data)
    assert zlib.decompress(blob[8:]) == data
    assert decompress_zlib_with_size(blob) == data
    assert compress_zlib_with_size(b"", 1) == b""
    assert decompress_zlib_with_size(b"") == b""
    with pytest.raises(CorruptedFile):
        decompress_zlib_with_size(blob[:20])


def test_stage_publish_read_and_md5(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    data = bytes(range(256)) * 100
    info = store.stage(data, 1, compress=True)
    assert info.compression == COMPRESSION_ZLIB_WITH_SIZE
    assert info.uncompressed_size == len(data) and info.compressed_size < len(data)
    assert len(info.uncompressed_md5) == 32 and info.uncompressed_md5 != info.compressed_md5
    assert store.read(info) == data  # readable from staging already
    store.publish([info.uuid])
    final = tmp_path / info.uuid[:2] / info.uuid[2:4] / info.uuid
    assert final.is_file()
    assert store.read(info) == data


def test_recover_publishes_committed_and_discards_the_rest(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    committed = store.stage(b"a" * 10, 1, compress=False)
    orphan = store.stage(b"b" * 10, 1, compress=False)
    published, discarded = store.recover(lambda uuids: {committed.uuid} & set(uuids))
    assert (published, discarded) == (1, 1)
    assert store.read(committed) == b"a" * 10
    assert not list((tmp_path / ".staging").iterdir())
    with pytest.raises(Exception, match="missing"):
        store.read(orphan)


def test_compressed_blob_is_a_standard_zlib_stream() -> None:
    data = bytes(range(256)) * 4000 + b"tail"
    for level in (1, 6, 9):
        blob = compress_zlib_with_size(data, level)
        assert struct.unpack("<Q", blob[:8])[0] == len(data)
        assert zlib.decompress(blob[8:]) == data  # what Orthanc (zlib) reads
        # and what Orthanc writes (zlib) reads back here
        orthanc_blob = struct.pack("<Q", len(data)) + zlib.compress(data, level)
        assert decompress_zlib_with_size(orthanc_blob) == data
