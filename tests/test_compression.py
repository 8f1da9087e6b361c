"""StorageCompression: Orthanc's zlib format on disk, dicom-until-pixel-data, sizes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from storefiles import stored_files

from dicomfactory import make_dataset, make_dicom, to_bytes


def stored_blobs(storage: Path) -> list[bytes]:
    return [p.read_bytes() for p in stored_files(storage)]


def test_compressed_storage(make_daemon) -> None:
    daemon, client = make_daemon(StorageCompression=True)
    ds = make_dataset(rows=64, cols=64)
    ds.PixelData = bytes(64 * 64 * 2)  # compressible
    data = to_bytes(ds)
    answer = client.post("/instances", data=data).json()
    assert client.get(f"/instances/{answer['ID']}/file").content == data

    blobs = stored_blobs(daemon.config.storage_directory)
    assert len(blobs) == 2  # dicom + dicom-until-pixel-data
    originals = sorted(zlib.decompress(b[8:]) for b in blobs)
    for blob in blobs:
        assert struct.unpack("<Q", blob[:8])[0] == len(zlib.decompress(blob[8:]))
    header, full = originals
    assert full == data
    assert data.startswith(header) and data[len(header) : len(header) + 4] == b"\xe0\x7f\x10\x00"

    stats = client.get("/statistics").json()
    assert int(stats["TotalDiskSize"]) == sum(len(b) for b in blobs)
    assert int(stats["TotalUncompressedSize"]) == len(data) + len(header)
    assert int(stats["TotalDiskSize"]) < len(data)
    tags = client.get(f"/instances/{answer['ID']}/simplified-tags").json()
    assert tags["SOPInstanceUID"] == ds.SOPInstanceUID


def test_object_without_pixels_has_no_header_attachment(make_daemon) -> None:
    daemon, client = make_daemon(StorageCompression=True)
    data = make_dicom(with_pixels=False)
    client.post("/instances", data=data)
    assert len(stored_blobs(daemon.config.storage_directory)) == 1
