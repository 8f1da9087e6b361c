"""Attachments on a real daemon: Orthanc's URIs, answers and error codes, revisions,
compression, byte ranges, the change log, files on disk and large streamed bodies."""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

import pytest

from dicomd.domain.model import ChangeType, Level
from storefiles import stored_files

from conftest import Client
from dicomfactory import make_dicom

USER_TYPES = {"sample": [1024, "text/plain"], "blob": 1025, "рентген": [1026, "image/png"]}
# Every byte value, a UTF-8 text and a NUL-led tail: binary and non-ASCII content.
BINARY = bytes(range(256)) * 3 + "données: ⚕ ✓".encode() + b"\x00\xff" * 50
OPERATIONS = [
    "compress",
    "compressed-data",
    "compressed-md5",
    "compressed-size",
    "data",
    "info",
    "is-compressed",
    "md5",
    "size",
    "uncompress",
    "verify-md5",
]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def upload(client: Client) -> dict[str, str]:
    """One instance; its ID and its ancestors' IDs by collection name."""
    answer = client.post("/instances", data=make_dicom()).json()
    return {
        "instances": answer["ID"],
        "series": answer["ParentSeries"],
        "studies": answer["ParentStudy"],
        "patients": answer["ParentPatient"],
    }


@pytest.fixture
def setup(make_daemon):
    """A daemon with user content types, one instance, and its attachments' base URI."""

    def start(**settings):
        settings.setdefault("UserContentType", USER_TYPES)
        daemon, client = make_daemon(**settings)
        ids = upload(client)
        return daemon, client, f"/instances/{ids['instances']}/attachments", ids

    return start


def test_put_get_list_by_name_and_number(setup) -> None:
    daemon, client, base, _ids = setup()
    r = client.put(f"{base}/sample", data=BINARY)
    assert r.status_code == 200 and r.json() == {}
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["ETag"] == f'"0-{md5(BINARY)}"'
    assert client.put(f"{base}/1030", data=b"numeric").status_code == 200  # no name
    assert client.put(f"{base}/рентген", data="снимок".encode()).status_code == 200

    assert client.get(base).json() == ["dicom", "sample", "рентген", "1030"]
    full = client.get(f"{base}?full").json()
    assert full == {"dicom": 1, "sample": 1024, "рентген": 1026, "1030": 1030}

    for name in ("sample", "1024"):
        r = client.get(f"{base}/{name}/data")
        assert r.status_code == 200 and r.content == BINARY
        assert r.headers["Content-Type"] == "text/plain"  # the MIME type of UserContentType
        assert r.headers["ETag"] == f'"0-{md5(BINARY)}"'
    assert client.get(f"{base}/1030/data").headers["Content-Type"] == "application/octet-stream"
    r = client.get(f"{base}/%D1%80%D0%B5%D0%BD%D1%82%D0%B3%D0%B5%D0%BD/data")
    assert r.content == "снимок".encode() and r.headers["Content-Type"] == "image/png"

    assert client.get(f"{base}/sample").json() == OPERATIONS
    assert client.get(f"{base}/sample/size").text == str(len(BINARY))
    assert client.get(f"{base}/sample/md5").text == md5(BINARY)
    assert client.get(f"{base}/sample/size").headers["Content-Type"] == "text/plain"
    info = client.get(f"{base}/sample/info").json()
    assert info["ContentType"] == 1024 and info["UncompressedSize"] == len(BINARY)
    assert info["UncompressedMD5"] == md5(BINARY)
    assert set(info) == {
        "Uuid",
        "ContentType",
        "UncompressedSize",
        "CompressedSize",
        "UncompressedMD5",
        "CompressedMD5",
    }


def test_system_attachments_are_readable_not_writable(setup) -> None:
    daemon, client, base, ids = setup()
    dicom = client.get(f"/instances/{ids['instances']}/file").content
    r = client.get(f"{base}/dicom/data")
    assert r.content == dicom and r.headers["Content-Type"] == "application/dicom"
    assert client.get(f"{base}/1/md5").text == md5(dicom)
    for name in ("dicom", "1", "dicom-until-pixel-data", "1000", "70000"):
        assert client.put(f"{base}/{name}", data=b"x").status_code == 403
        assert client.delete(f"{base}/{name}").status_code == 403
    assert client.get(f"/instances/{ids['instances']}/file").content == dicom


def test_unknown_names_resources_and_absent_attachments(setup) -> None:
    """As recorded on Orthanc 1.10.1: an unknown name is InexistentItem, an unknown resource
    or an absent attachment a described "Unknown resource" 404, and verify-md5 of an absent
    attachment an empty 400."""
    daemon, client, base, ids = setup()
    r = client.put(f"{base}/foo", data=b"x")
    assert r.status_code == 404 and r.json()["OrthancStatus"] == 7  # InexistentItem
    assert r.json()["Message"] == "Accessing an inexistent item"
    assert client.get(f"{base}/foo/data").status_code == 404
    assert client.get(f"{base}/RemoteAET").status_code == 404  # names are per kind
    for method, uri in [
        ("PUT", "/instances/nope/attachments/sample"),
        ("GET", "/instances/nope/attachments"),
        ("GET", f"/series/{ids['instances']}/attachments"),  # the listing checks the level
        ("GET", "/instances/nope/attachments/dicom/data"),
        ("GET", f"{base}/sample"),  # absent
        ("GET", f"{base}/sample/data"),
        ("GET", f"{base}/sample/size"),
        ("DELETE", f"{base}/sample"),
        ("DELETE", "/instances/nope/attachments/sample"),
        ("POST", f"{base}/sample/compress"),
        ("POST", "/instances/nope/attachments/dicom/compress"),
        ("POST", "/instances/nope/attachments/dicom/verify-md5"),
    ]:
        r = client.request(method, uri, data=b"x" if method == "PUT" else None)
        assert r.status_code == 404, (method, uri)
        assert r.json()["Message"] == "Unknown resource", (method, uri)
    # A POST without an answer is a 400 in Orthanc: verify-md5 of nothing.
    r = client.post(f"{base}/sample/verify-md5")
    assert (r.status_code, r.content) == (400, b"")
    assert stored_files(daemon.config.storage_directory) == stored_files_of_dicom(daemon)


def test_one_attachment_ignores_the_level_of_the_uri(setup) -> None:
    """Orthanc looks an attachment's resource up by its ID alone: only the listing checks
    that the URI's collection is the resource's level."""
    _daemon, client, base, ids = setup()
    instance = ids["instances"]
    assert client.put(f"/patients/{instance}/attachments/sample", data=b"abc").status_code == 200
    assert client.get(f"{base}").json() == ["dicom", "sample"]
    assert client.get(f"/series/{instance}/attachments/sample/data").content == b"abc"
    assert client.get(f"/studies/{instance}/attachments/dicom/size").text.isdigit()
    assert client.post(f"/studies/{instance}/attachments/sample/compress").json() == {}
    assert client.post(f"/series/{instance}/attachments/sample/verify-md5").json() == {}
    assert client.delete(f"/patients/{instance}/attachments/sample").status_code == 200
    assert client.get(base).json() == ["dicom"]


def stored_files_of_dicom(daemon) -> list[Path]:
    resource = daemon.index.get(Level.INSTANCE, daemon.index.list_ids(Level.INSTANCE)[0])
    return sorted(
        daemon.config.storage_directory / f.uuid[:2] / f.uuid[2:4] / f.uuid
        for f in daemon.index.attachments(resource).values()
    )


@pytest.mark.parametrize("collection", ["patients", "studies", "series"])
def test_other_levels(setup, collection: str) -> None:
    daemon, client, _base, ids = setup()
    base = f"/{collection}/{ids[collection]}/attachments"
    assert client.get(base).json() == []
    assert client.put(f"{base}/blob", data=BINARY).status_code == 200
    assert client.get(base).json() == ["blob"]
    assert client.get(f"{base}/blob/data").content == BINARY
    assert client.get(f"{base}/1025/info").json()["ContentType"] == 1025
    assert client.get(f"{base}/dicom/data").status_code == 404
    assert client.delete(f"{base}/blob").status_code == 200
    assert client.get(base).json() == []


def test_revisions_with_check_revisions(setup) -> None:
    daemon, client, base, _ids = setup(CheckRevisions=True)
    first = client.put(f"{base}/sample", data=b"one").headers["ETag"]
    assert first == f'"0-{md5(b"one")}"'
    assert client.put(f"{base}/sample", data=b"two").status_code == 409  # If-Match missing
    stale = {"If-Match": f'"5-{md5(b"one")}"'}
    assert client.put(f"{base}/sample", data=b"two", headers=stale).status_code == 409
    bad = {"If-Match": "garbage"}
    assert client.put(f"{base}/sample", data=b"two", headers=bad).status_code == 400
    r = client.put(f"{base}/sample", data=b"two", headers={"If-Match": first.strip('"')})
    assert r.status_code == 200 and r.headers["ETag"] == f'"1-{md5(b"two")}"'
    assert client.get(f"{base}/sample/data").headers["ETag"] == r.headers["ETag"]

    assert client.delete(f"{base}/sample").status_code == 409
    assert client.delete(f"{base}/sample", headers={"If-Match": first}).status_code == 409
    current = {"If-Match": r.headers["ETag"]}
    assert client.delete(f"{base}/sample", headers=current).status_code == 200
    assert client.get(f"{base}/sample").status_code == 404
    assert client.get(f"{base}/sample/data").status_code == 404


def test_revisions_without_check_revisions(setup) -> None:
    daemon, client, base, _ids = setup()
    client.put(f"{base}/sample", data=b"one")
    r = client.put(f"{base}/sample", data=b"two")  # no If-Match needed
    assert r.headers["ETag"] == f'"1-{md5(b"two")}"'
    stale = {"If-Match": f'"0-{md5(b"one")}"'}
    assert client.put(f"{base}/sample", data=b"x", headers=stale).status_code == 409
    assert client.delete(f"{base}/sample", headers=stale).status_code == 409
    assert client.delete(f"{base}/sample").status_code == 200


def test_if_none_match(setup) -> None:
    daemon, client, base, _ids = setup()
    tag = client.put(f"{base}/sample", data=b"value").headers["ETag"]
    for tail in ("", "/data", "/compressed-data", "/info", "/size", "/md5"):
        r = client.get(f"{base}/sample{tail}", headers={"If-None-Match": tag})
        assert (r.status_code, r.content, r.headers["ETag"]) == (304, b"", tag), tail
    r = client.get(f"{base}/sample/data", headers={"If-None-Match": f'"1-{md5(b"value")}"'})
    assert r.status_code == 200 and r.content == b"value"


@pytest.mark.parametrize("compression", [False, True])
def test_compression_and_round_trip(setup, compression: bool) -> None:
    daemon, client, base, _ids = setup(StorageCompression=compression)
    data = BINARY * 20  # compressible
    client.put(f"{base}/blob", data=data)
    stored = client.get(f"{base}/blob/compressed-data")
    assert stored.headers["Content-Type"] == "application/octet-stream"
    assert client.get(f"{base}/blob/is-compressed").text == str(int(compression))
    if compression:
        assert struct.unpack("<Q", stored.content[:8])[0] == len(data)
        assert zlib.decompress(stored.content[8:]) == data
        assert len(stored.content) < len(data)
    else:
        assert stored.content == data
    assert client.get(f"{base}/blob/compressed-size").text == str(len(stored.content))
    assert client.get(f"{base}/blob/compressed-md5").text == md5(stored.content)
    assert client.post(f"{base}/blob/verify-md5").json() == {}

    for step, compressed in enumerate([not compression, compression], start=1):
        r = client.post(f"{base}/blob/{'compress' if compressed else 'uncompress'}")
        assert r.status_code == 200 and r.json() == {}
        assert client.get(f"{base}/blob/is-compressed").text == str(int(compressed))
        assert client.get(f"{base}/blob/data").content == data
        assert client.get(f"{base}/blob/md5").text == md5(data)
        assert client.get(f"{base}/blob/size").text == str(len(data))
        assert client.get(f"{base}/blob").headers["ETag"] == f'"{step}-{md5(data)}"'
        assert client.post(f"{base}/blob/verify-md5").json() == {}
    # Asking for the format it already has changes nothing, not even the revision.
    client.post(f"{base}/blob/{'compress' if compression else 'uncompress'}")
    assert client.get(f"{base}/blob").headers["ETag"] == f'"2-{md5(data)}"'
    assert len(stored_files(daemon.config.storage_directory)) == 1 + compression + 1


def test_compress_a_system_attachment(setup) -> None:
    daemon, client, base, ids = setup()
    dicom = client.get(f"/instances/{ids['instances']}/file").content
    assert client.post(f"{base}/dicom/compress").json() == {}
    assert client.get(f"{base}/dicom/is-compressed").text == "1"
    assert client.get(f"/instances/{ids['instances']}/file").content == dicom
    assert client.get(f"/instances/{ids['instances']}/simplified-tags").status_code == 200
    assert client.post(f"{base}/dicom/uncompress").json() == {}
    assert client.get(f"{base}/dicom/compressed-data").content == dicom


def test_compress_refuses_an_attachment_replaced_meanwhile(setup, monkeypatch) -> None:
    daemon, client, base, _ids = setup()
    client.put(f"{base}/blob", data=b"first")
    files = len(stored_files(daemon.config.storage_directory))
    write_stream = daemon.store.write_stream

    def racing(*args, **kwargs):
        info = write_stream(*args, **kwargs)
        monkeypatch.setattr(daemon.store, "write_stream", write_stream)
        assert client.put(f"{base}/blob", data=b"second").status_code == 200  # another writer
        return info

    monkeypatch.setattr(daemon.store, "write_stream", racing)
    assert client.post(f"{base}/blob/compress").status_code == 409
    assert client.get(f"{base}/blob/data").content == b"second"
    assert client.get(f"{base}/blob/is-compressed").text == "0"
    assert len(stored_files(daemon.config.storage_directory)) == files  # no copy left


@pytest.mark.parametrize("compression", [False, True])
def test_byte_ranges(setup, compression: bool) -> None:
    daemon, client, base, _ids = setup(StorageCompression=compression)
    data = os.urandom(3_000_000) + bytes(1_000_000)  # several chunks
    client.put(f"{base}/blob", data=data)
    size = len(data)
    for header, start, end in [
        ("bytes=0-0", 0, 1),
        ("bytes=10-19", 10, 20),
        ("bytes=2999990-3000009", 2_999_990, 3_000_010),
        ("bytes=1048570-", 1_048_570, size),
        ("bytes=-5", size - 5, size),
        ("bytes=100-99999999", 100, size),  # clamped to the end
    ]:
        r = client.get(f"{base}/blob/data", headers={"Range": header})
        assert r.status_code == 206, header
        assert r.content == data[start:end], header
        assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
        assert r.headers["Content-Length"] == str(end - start)
    for header in (f"bytes={size}-", "bytes=5-4", "bytes=0-1,5-6", "items=0-1", "bytes=-"):
        r = client.get(f"{base}/blob/data", headers={"Range": header})
        assert r.status_code == 416 and r.json()["OrthancStatus"] == 41, header
    r = client.get(f"{base}/blob/data")
    assert r.status_code == 200 and r.headers["Accept-Ranges"] == "bytes"


def test_download_name(setup) -> None:
    daemon, client, base, _ids = setup()
    client.put(f"{base}/sample", data=b"report")
    r = client.get(f"{base}/sample/data", params={"filename": 'report "v1".txt'})
    assert r.headers["Content-Disposition"] == 'filename="report v1.txt"'
    r = client.get(f"{base}/sample/data", params={"filename": "../rapport-été.txt"})
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith('filename="..rapport-?t?.txt"')
    assert disposition.endswith("filename*=UTF-8''..rapport-%C3%A9t%C3%A9.txt")


def test_without_stored_md5(setup) -> None:
    daemon, client, base, _ids = setup(StoreMD5ForAttachments=False)
    r = client.put(f"{base}/sample", data=b"value")
    assert r.headers["ETag"] == '"0-"'
    ops = client.get(f"{base}/sample").json()
    assert ops == [o for o in OPERATIONS if o not in ("md5", "compressed-md5", "verify-md5")]
    assert client.get(f"{base}/sample/md5").status_code == 404
    assert client.get(f"{base}/sample/compressed-md5").status_code == 404
    assert client.post(f"{base}/sample/verify-md5").status_code == 400
    assert client.get(f"{base}/sample/info").json()["UncompressedMD5"] == ""


@pytest.mark.parametrize("compression", [False, True])
def test_verify_md5_detects_corruption(setup, compression: bool) -> None:
    daemon, client, base, _ids = setup(StorageCompression=compression)
    client.put(f"{base}/blob", data=BINARY)
    uuid = client.get(f"{base}/blob/info").json()["Uuid"]
    path = daemon.config.storage_directory / uuid[:2] / uuid[2:4] / uuid
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    assert client.post(f"{base}/blob/verify-md5").status_code == 400


def test_changes_and_files_on_disk(setup) -> None:
    daemon, client, base, ids = setup()
    storage = daemon.config.storage_directory
    before = stored_files(storage)
    start = daemon.index.last_logged_seq()
    client.put(f"{base}/blob", data=b"first")
    first = client.get(f"{base}/blob/info").json()["Uuid"]
    client.put(f"{base}/blob", data=b"second")  # the first file goes
    second = client.get(f"{base}/blob/info").json()["Uuid"]
    assert len(stored_files(storage)) == len(before) + 1
    assert first not in {p.name for p in stored_files(storage)}
    client.post(f"{base}/blob/compress")  # so does the uncompressed copy
    assert second not in {p.name for p in stored_files(storage)}
    assert len(stored_files(storage)) == len(before) + 1
    client.put(f"/studies/{ids['studies']}/attachments/sample", data=b"study")
    client.delete(f"{base}/blob")
    client.delete(f"/studies/{ids['studies']}/attachments/sample")
    assert stored_files(storage) == before
    assert daemon.index.pending_file_deletions() == []

    changes = [c for c in daemon.index.changes(0, 1000)[0] if c.seq > start]
    assert [(c.change_type, c.level, c.public_id) for c in changes] == [
        (ChangeType.UpdatedAttachment, Level.INSTANCE, ids["instances"]),
        (ChangeType.UpdatedAttachment, Level.INSTANCE, ids["instances"]),
        (ChangeType.UpdatedAttachment, Level.INSTANCE, ids["instances"]),
        (ChangeType.UpdatedAttachment, Level.STUDY, ids["studies"]),
        (ChangeType.UpdatedAttachment, Level.INSTANCE, ids["instances"]),
        (ChangeType.UpdatedAttachment, Level.STUDY, ids["studies"]),
    ]
    # Refused writes log nothing.
    client.put(f"{base}/dicom", data=b"x")
    client.delete(f"{base}/blob")
    assert daemon.index.last_change_seq() == changes[-1].seq


def test_oversized_body_is_refused_and_nothing_stored(setup) -> None:
    daemon, client, base, _ids = setup(MaximumAttachmentSize=1)
    before = stored_files(daemon.config.storage_directory)
    limit = 1024 * 1024
    assert client.put(f"{base}/blob", data=bytes(limit)).status_code == 200  # at the limit
    client.delete(f"{base}/blob")
    r = client.put(f"{base}/blob", data=bytes(8 * limit))
    assert r.status_code == 413
    body = r.json()
    assert (body["HttpStatus"], body["OrthancStatus"], body["Method"]) == (413, 8, "PUT")
    assert "MaximumAttachmentSize" in body["Details"]

    def chunked():  # no Content-Length: refused as soon as the limit is passed
        for _ in range(4):
            yield bytes(limit)

    assert client.put(f"{base}/blob", data=chunked()).status_code == 413
    assert client.get(f"{base}/blob").status_code == 404
    assert stored_files(daemon.config.storage_directory) == before
    assert client.get(base).json() == ["dicom"]  # and the daemon serves on


def test_refused_write_of_a_large_body_keeps_the_connection_usable(setup) -> None:
    daemon, client, base, _ids = setup()
    r = client.put(f"{base}/dicom", data=bytes(5 * 1024 * 1024))
    assert r.status_code == 403
    assert client.put(f"{base}/blob", data=b"next").status_code == 200
    assert client.get(f"{base}/blob/data").content == b"next"


class _Body:
    """A large request body generated on the fly, with a length, so that the client streams
    it with a Content-Length and holds only one block at a time either."""

    BLOCK = os.urandom(512 * 1024) + bytes(512 * 1024)  # half compressible, like real files

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = 0
        self.md5 = hashlib.md5()

    def __len__(self) -> int:
        return self.size - self.sent

    def read(self, amount: int = -1) -> bytes:
        offset = self.sent % len(self.BLOCK)
        left = self.size - self.sent
        amount = left if amount < 0 else min(amount, left)
        chunk = self.BLOCK[offset : offset + amount]
        self.sent += len(chunk)
        self.md5.update(chunk)
        return chunk


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
@pytest.mark.parametrize("compression", [False, True])
def test_100_mb_attachment_is_streamed(daemon_process, compression: bool) -> None:
    proc = daemon_process(StorageCompression=compression, HttpProcesses=1).start()
    assert proc.proc is not None
    client = proc.client()
    base = f"/instances/{upload(client)['instances']}/attachments/1025"
    size = 100 * 1024 * 1024
    before = peak_memory_mb(proc.proc.pid)

    body = _Body(size)
    r = client.put(base, data=body)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == f'"0-{body.md5.hexdigest()}"'
    downloaded = hashlib.md5()
    received = 0
    with client.get(f"{base}/data", stream=True) as r:
        assert r.headers["Content-Length"] == str(size)
        for chunk in r.iter_content(1024 * 1024):
            downloaded.update(chunk)
            received += len(chunk)
    assert (received, downloaded.hexdigest()) == (size, body.md5.hexdigest())
    ranged = client.get(f"{base}/data", headers={"Range": f"bytes={size - 10}-"})
    assert ranged.content == body.BLOCK[-10:]
    assert client.get(f"{base}/is-compressed").text == str(int(compression))

    growth = peak_memory_mb(proc.proc.pid) - before
    print(f"100 MB attachment, compression {compression}: peak memory grew {growth:.1f} MB")
    assert growth < 60, f"the daemon's peak memory grew by {growth:.0f} MB"
