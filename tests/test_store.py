"""The file store: Orthanc's compressed format and crash recovery."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest

from dicomd.errors import CorruptedFile, InexistentFile
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


def test_write_read_and_md5(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    data = bytes(range(256)) * 100
    info = store.write(data, 1, compress=True)
    assert info.compression == COMPRESSION_ZLIB_WITH_SIZE
    assert info.uncompressed_size == len(data) and info.compressed_size < len(data)
    assert info.uncompressed_md5 == hashlib.md5(data).hexdigest()
    assert info.uncompressed_md5 != info.compressed_md5
    final = tmp_path / info.uuid[:2] / info.uuid[2:4] / info.uuid
    assert final.is_file() and len(final.read_bytes()) == info.compressed_size
    assert store.read(info) == data
    store.settle([info], committed=False)
    assert not final.exists()
    with pytest.raises(InexistentFile):
        store.read(info)


def test_recover_deletes_unrecorded_files_of_a_dead_process(tmp_path: Path) -> None:
    dead = FileStore(tmp_path)  # a process killed between writing files and settling them
    recorded = dead.write(b"a" * 10, 1, compress=False)
    orphan = dead.write(b"b" * 10, 1, compress=False)
    settled = dead.write(b"c" * 10, 1, compress=False)
    dead.settle([settled], committed=True)

    restarted = FileStore(tmp_path)
    deleted = restarted.recover(lambda uuids: {recorded.uuid, settled.uuid} & set(uuids))
    assert deleted == 1
    assert restarted.read(recorded) == b"a" * 10
    assert restarted.read(settled) == b"c" * 10
    with pytest.raises(InexistentFile):
        restarted.read(orphan)
    assert list((tmp_path / ".journal").iterdir()) == []  # the dead process's journal is gone


def test_full_journals_are_deleted_once_settled(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store._journal.ENTRIES_PER_FILE = 3  # type: ignore[misc]
    files = [store.write(bytes([i]) * 4, 1, compress=False) for i in range(7)]
    assert len(list((tmp_path / ".journal").iterdir())) == 3
    store.settle(files, committed=True)
    assert len(list((tmp_path / ".journal").iterdir())) == 1  # only the current one
    store.close()
    assert list((tmp_path / ".journal").iterdir()) == []


def test_compressed_blob_is_a_standard_zlib_stream() -> None:
    data = bytes(range(256)) * 4000 + b"tail"
    for level in (1, 6, 9):
        blob = compress_zlib_with_size(data, level)
        assert struct.unpack("<Q", blob[:8])[0] == len(data)
        assert zlib.decompress(blob[8:]) == data  # what Orthanc (zlib) reads
        # and what Orthanc writes (zlib) reads back here
        orthanc_blob = struct.pack("<Q", len(data)) + zlib.compress(data, level)
        assert decompress_zlib_with_size(orthanc_blob) == data
