"""Every file pydicom ships is uploaded: valid ones come back byte-identical, the others get a
4xx JSON error and leave nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_files

from storefiles import stored_files

# Files that any DICOM server must store (a sample across modalities and encodings).
MUST_STORE = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "rtplan.dcm",
    "image_dfl.dcm",
    "JPEG2000.dcm",
    "SC_rgb.dcm",
    "emri_small.dcm",
]
# Files that are not DICOM at all, or cut short (pydicom reads them; DCMTK and Orthanc refuse).
MUST_REJECT = ["README.txt", "MR_truncated.dcm", "rtplan_truncated.dcm"]


@pytest.mark.slow
def test_every_pydicom_test_file(daemon_client) -> None:
    daemon, client = daemon_client
    storage = daemon.config.storage_directory
    paths = sorted(p for p in set(get_testdata_files()) if Path(p).is_file())
    assert len(paths) > 100
    stored: dict[str, bytes] = {}
    rejected: list[str] = []
    for path in paths:
        data = Path(path).read_bytes()
        before = client.get("/statistics").json()
        files_before = set(stored_files(storage))
        r = client.post("/instances", data=data)
        name = Path(path).name
        if r.status_code == 200:
            answer = r.json()
            assert answer["Status"] in ("Success", "AlreadyStored"), name
            if answer["Status"] == "Success":
                stored[answer["ID"]] = data
        else:
            assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
            error = r.json()
            assert error["HttpStatus"] == r.status_code and error["Details"], name
            assert client.get("/statistics").json() == before, name
            assert set(stored_files(storage)) == files_before, name
            rejected.append(name)
    for instance_id, data in stored.items():
        assert client.get(f"/instances/{instance_id}/file").content == data
    stored_names = {Path(p).name for p in paths} - set(rejected)
    local_names = {Path(p).name for p in paths}
    assert len(local_names & set(MUST_STORE)) >= 5
    for name in local_names & set(MUST_STORE):
        assert name in stored_names, name
    for name in MUST_REJECT:
        if any(Path(p).name == name for p in paths):
            assert name in rejected
    assert client.get("/statistics").json()["CountInstances"] == len(stored)
