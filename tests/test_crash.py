"""An acknowledged instance survives SIGKILL, and a crash leaves no orphan file or row."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import requests

from storefiles import stored_files

from dicomfactory import make_series


def index_file_uuids(index_dir: Path) -> set[str]:
    with sqlite3.connect(index_dir / "dicomd-index.sqlite") as db:
        return {row[0] for row in db.execute("SELECT uuid FROM attachments")}


def store_file_uuids(storage: Path) -> set[str]:
    return {p.name for p in stored_files(storage)}


@pytest.mark.slow
@pytest.mark.parametrize("compression", [False, True])
def test_sigkill_during_concurrent_upload(daemon_process, compression: bool) -> None:
    proc = daemon_process(StorageCompression=compression).start()
    files = make_series(400, rows=128, cols=128)
    acknowledged: dict[str, bytes] = {}
    lock = threading.Lock()
    cursor = iter(range(len(files)))

    def client_loop() -> None:
        session = requests.Session()
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            try:
                r = session.post(proc.url + "/instances", data=files[i], timeout=10)
            except requests.RequestException:
                return
            if r.status_code == 200:
                with lock:
                    acknowledged[r.json()["ID"]] = files[i]

    clients = [threading.Thread(target=client_loop) for _ in range(4)]
    for t in clients:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 60 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.kill()  # SIGKILL, in the middle of the uploads
    for t in clients:
        t.join()
    assert 60 <= len(acknowledged) < len(files)

    proc.start()
    client = proc.client()
    listed = set(client.get("/instances").json())
    assert set(acknowledged) <= listed
    for instance_id, data in acknowledged.items():
        assert client.get(f"/instances/{instance_id}/file").content == data
    storage, index = proc.folder / "storage", proc.folder / "index"
    assert index_file_uuids(index) == store_file_uuids(storage)
    # the journals of the killed processes were checked and deleted at the restart
    assert len(list((storage / ".journal").iterdir())) <= 1
    stats = client.get("/statistics").json()
    assert stats["CountInstances"] == len(listed)
