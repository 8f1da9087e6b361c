"""Only whole files are stored: a file cut anywhere, a declared length past the end, or
sequences nested without end answer 400 and leave nothing behind (pydicom reads such files
leniently; DCMTK, hence Orthanc, refuses them)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from storefiles import stored_files

from dicomfactory import make_dataset, to_bytes


def _refused(daemon, client, data: bytes) -> dict:
    before = client.get("/statistics").json()
    files = set(stored_files(daemon.config.storage_directory))
    r = client.post("/instances", data=data)
    assert r.status_code == 400, r.text
    assert r.json()["OrthancError"] == "Bad file format"
    assert client.get("/statistics").json() == before
    assert set(stored_files(daemon.config.storage_directory)) == files
    return r.json()


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "SC_rgb_rle.dcm", "rtplan.dcm"])
def test_a_file_cut_anywhere_after_its_identifiers_is_refused(daemon_client, name) -> None:
    daemon, client = daemon_client
    data = Path(get_testdata_file(name)).read_bytes()
    # Cuts in the pixel data, one byte short, and inside the header after the UIDs.
    for cut in (len(data) // 2, len(data) * 3 // 4, len(data) - 100, len(data) - 1):
        error = _refused(daemon, client, data[:cut])
        assert "truncated" in error["Details"], (cut, error)
    assert client.post("/instances", data=data).json()["Status"] == "Success"


def test_pixel_data_shorter_than_declared(daemon_client) -> None:
    daemon, client = daemon_client
    data = to_bytes(make_dataset(rows=64, cols=64))
    error = _refused(daemon, client, data[:-1000])
    assert "7FE0,0010" in error["Details"] or "more bytes" in error["Details"]


def test_a_length_of_4_gb_is_refused(daemon_client) -> None:
    daemon, client = daemon_client
    ds = make_dataset(with_pixels=False)
    ds.StudyDescription = "x" * 8
    data = bytearray(to_bytes(ds))
    at = data.index(b"\x08\x00\x30\x10LO")  # (0008,1030) LO, explicit VR little endian
    data[at + 6 : at + 8] = b"\xff\xff"  # LO has a 2-byte length: claim 65535 bytes
    _refused(daemon, client, bytes(data))  # (what follows it is swallowed: no UIDs left)
    # An OB element claiming 4 GB, after the identifiers.
    ds = make_dataset(with_pixels=False)
    blob = bytearray(to_bytes(ds))
    blob += b"\x09\x00\x10\x10OB\x00\x00" + struct.pack("<I", 0xFFFFFFF0) + b"\x00" * 16
    assert "truncated" in _refused(daemon, client, bytes(blob))["Details"]


def test_sequences_nested_too_deep_are_refused(daemon_client) -> None:
    daemon, client = daemon_client
    ds = make_dataset(with_pixels=False)
    item = Dataset()
    top = item
    for _ in range(200):
        child = Dataset()
        item.ReferencedSeriesSequence = Sequence([child])
        item = child
    ds.ReferencedSeriesSequence = top.ReferencedSeriesSequence
    error = _refused(daemon, client, to_bytes(ds))
    assert "nests sequences" in error["Details"]
    # Ten levels are fine, and shown by /tags.
    shallow = make_dataset(with_pixels=False)
    item = shallow
    for _ in range(10):
        child = Dataset()
        child.ReferencedSOPInstanceUID = "1.2.3"
        item.ReferencedSeriesSequence = Sequence([child])
        item = child
    stored = client.post("/instances", data=to_bytes(shallow)).json()
    assert client.get(f"/instances/{stored['ID']}/tags").status_code == 200
