"""Each sample of scripts/lua/ loaded into a real daemon and exercised."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import wait_for
from dicomfactory import make_dicom, make_series

SAMPLES = Path(__file__).parent.parent / "scripts" / "lua"


def sample(name: str) -> str:
    return str(SAMPLES / name)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from dicomd.events.delivery import _Worker

    monkeypatch.setattr(_Worker, "RETRY_DELAYS", (0.05, 0.05))


def test_autorouting_forwards_to_the_peer(make_daemon) -> None:
    _peer, peer = make_daemon()
    _daemon, client = make_daemon(
        LuaScripts=[sample("autorouting.lua")], OrthancPeers={"pacs": [peer.base_url]}
    )
    ids = [client.post("/instances", data=d).json()["ID"] for d in make_series(3)]
    wait_for(lambda: set(ids) <= set(peer.get("/instances").json()), timeout=30)
    jobs = client.get("/jobs?expand").json()
    assert {j["Content"]["Description"] for j in jobs} == {"Lua"}
    assert client.get("/events/failures").json() == []


def test_conditional_routing(make_daemon) -> None:
    _peer, peer = make_daemon()
    _daemon, client = make_daemon(
        LuaScripts=[sample("conditional-routing.lua")],
        UserMetadata={"Route": 1024},
        OrthancPeers={"ct-pacs": [peer.base_url]},
    )
    test = client.post("/instances", data=make_dicom(patient_name="Test^Patient")).json()["ID"]
    real = client.post("/instances", data=make_dicom(patient_name="Real^Person")).json()["ID"]
    wait_for(lambda: client.get(f"/instances/{test}").status_code == 404)
    wait_for(lambda: client.get(f"/instances/{real}/metadata/Route").text == "ct-pacs")
    wait_for(lambda: real in peer.get("/instances").json(), timeout=30)
    assert test not in peer.get("/instances").json()


def test_write_stable_series_to_disk(make_daemon, tmp_path: Path) -> None:
    folder = tmp_path / "tree"
    _daemon, client = make_daemon(
        LuaScripts=[sample("write-to-disk.lua")], WriteToDiskFolder=str(folder), StableAge=1
    )
    stored = [client.post("/instances", data=f).json() for f in make_series(3, patient_id="P/1")]
    study_uid = client.get(f"/studies/{stored[0]['ParentStudy']}").json()["MainDicomTags"][
        "StudyInstanceUID"
    ]
    target = folder / "P_1" / study_uid / "1"
    wait_for(lambda: len(list(target.glob("*.dcm"))) == 3)
    for item in stored:
        assert (target / f"{item['ID']}.dcm").read_bytes() == client.get(
            f"/instances/{item['ID']}/file"
        ).content


def dose_report(dlp: str) -> bytes:
    """A minimal X-Ray Radiation Dose SR with a total DLP nested in its content tree."""

    def code(value: str, meaning: str) -> Dataset:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        return item

    measured = Dataset()
    measured.NumericValue = dlp
    total = Dataset()
    total.ValueType = "NUM"
    total.ConceptNameCodeSequence = [code("113813", "CT Dose Length Product Total")]
    total.MeasuredValueSequence = [measured]
    container = Dataset()
    container.ValueType = "CONTAINER"
    container.ConceptNameCodeSequence = [code("113811", "CT Accumulated Dose Data")]
    container.ContentSequence = [total]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName, ds.Modality = "DOSE", "Dose^Report", "SR"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.ContentSequence = [container]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_parse_dose_report(make_daemon) -> None:
    _daemon, client = make_daemon(
        LuaScripts=[sample("parse-dose-report.lua")], UserMetadata={"DLP": 2001}
    )
    iid = client.post("/instances", data=dose_report("812.5")).json()["ID"]
    ct = client.post("/instances", data=make_dicom()).json()["ID"]
    wait_for(lambda: client.get(f"/instances/{iid}/metadata/DLP").text == "812.5")
    assert client.get(f"/instances/{ct}/metadata/DLP").status_code == 404


class Hook(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append({"headers": dict(self.headers), "body": json.loads(body)})
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    Hook.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.daemon_threads = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/studies", Hook.seen
    server.shutdown()
    server.server_close()
    thread.join()


def test_notify_web_service_on_stable_study(make_daemon, hook) -> None:
    url, seen = hook
    _daemon, client = make_daemon(
        LuaScripts=[sample("notify-web-service.lua")],
        NotifyUrl=url,
        NotifyUser="robot",
        NotifyPassword="pw",
        StableAge=1,
    )
    stored = [client.post("/instances", data=f).json() for f in make_series(2, patient_id="N1")]
    (call,) = wait_for(lambda: list(seen))
    assert call["body"]["StudyId"] == stored[0]["ParentStudy"]
    assert call["body"]["PatientID"] == "N1" and call["body"]["CountSeries"] == 1
    assert call["body"]["AccessionNumber"] == "ACC1"
    assert call["headers"]["Content-Type"] == "application/json"
    assert call["headers"]["Authorization"] == "Basic " + base64.b64encode(b"robot:pw").decode()


def test_protect_patient_on_condition(make_daemon) -> None:
    _daemon, client = make_daemon(LuaScripts=[sample("protect-patient.lua")])
    research = client.post("/instances", data=make_dicom(patient_name="Research^Subject")).json()
    other = client.post("/instances", data=make_dicom(patient_id="P2")).json()
    wait_for(lambda: client.get(f"/patients/{research['ParentPatient']}/protected").text == "1")
    assert client.get(f"/patients/{other['ParentPatient']}/protected").text == "0"


def test_archive_before_recycling(
    make_daemon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archive = tmp_path / "archive"
    _daemon, client = make_daemon(
        LuaScripts=[sample("archive-before-recycling.lua")],
        ArchiveFolder=str(archive),
        MaximumPatientCount=1,
    )
    first = [client.post("/instances", data=f).json() for f in make_series(2, patient_id="OLD")]
    with caplog.at_level(logging.WARNING, logger="dicomd.scripting.lua"):
        answer = client.post("/instances", data=make_dicom(patient_id="NEW"))
        assert answer.json()["Status"] == "Success"
        wait_for(lambda: "Recycled patient OLD" in caplog.text)
    assert client.get(f"/patients/{first[0]['ParentPatient']}").status_code == 404
    assert sorted(p.stem for p in (archive / "OLD").iterdir()) == sorted(i["ID"] for i in first)
    # An archive that cannot be written keeps the patient: nothing may be recycled, 507.
    (archive / "NEW").write_text("a file where the folder should go")
    assert client.post("/instances", data=make_dicom(patient_id="THIRD")).status_code == 507
    assert client.get("/patients").json() == [answer.json()["ParentPatient"]]


def test_send_to_peer_with_retry(make_daemon, caplog: pytest.LogCaptureFixture) -> None:
    _peer, peer = make_daemon()
    _daemon, client = make_daemon(
        LuaScripts=[sample("send-to-peer-with-retry.lua")],
        OrthancPeers={"pacs": [peer.base_url]},
    )
    sent = client.post("/instances", data=make_dicom()).json()["ID"]
    wait_for(lambda: peer.get("/instances").json() == [sent], timeout=30)
    # The peer goes away: each failed job is resubmitted 3 times, then left failed.
    down = {"Url": "http://127.0.0.1:9/", "MaxRetries": 0}
    assert client.put("/peers/pacs", json=down).status_code == 200
    with caplog.at_level(logging.WARNING, logger="dicomd.scripting.lua"):
        lost = client.post("/instances", data=make_dicom(patient_id="P2")).json()["ID"]
        (dead,) = wait_for(lambda: client.get("/peers/pacs/dead-letters").json(), timeout=30)
        wait_for(lambda: "left failed after 3 resubmits" in caplog.text)
        time.sleep(0.5)
    said = [r.getMessage() for r in caplog.records if "forward job" in r.getMessage()]
    assert [line.split(dead["ID"])[1] for line in said] == [
        " failed, resubmit 1 of 3",
        " failed, resubmit 2 of 3",
        " failed, resubmit 3 of 3",
        " left failed after 3 resubmits: " + dead["ErrorDetails"],
    ]
    job = client.get(f"/jobs/{dead['ID']}").json()
    assert job["State"] == "Failure" and job["Content"]["ParentResources"] == [lost]
    assert len(client.get("/jobs").json()) == 2  # one job per instance, resubmitted in place
    # A job the user cancels is not resubmitted.
    down["MaxRetries"] = 1000
    assert client.put("/peers/pacs", json=down).status_code == 200
    with caplog.at_level(logging.WARNING, logger="dicomd.scripting.lua"):
        caplog.clear()
        client.post("/instances", data=make_dicom(patient_id="P3"))
        (waiting,) = wait_for(
            lambda: [j for j in client.get("/jobs?expand").json() if j["State"] == "Retry"]
        )
        client.post(f"/jobs/{waiting['ID']}/cancel")
        wait_for(lambda: client.get(f"/jobs/{waiting['ID']}").json()["State"] == "Failure")
        time.sleep(0.5)
    assert "forward job" not in caplog.text
    assert client.get("/events/failures").json() == []
