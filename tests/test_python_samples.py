"""Every sample of ``scripts/python/`` loaded by a real daemon and exercised."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from pydicom.dataset import Dataset

from dicomd.domain.model import ChangeType
from dicomd.events.handlers import FunctionHandler
from pyscripts import failures

from conftest import wait_for
from dicomfactory import make_dataset, make_dicom, make_series, to_bytes

SAMPLES = Path(__file__).parent.parent / "scripts" / "python"


def sample(*names: str) -> list[str]:
    return [str(SAMPLES / f"{name}.py") for name in names]


def dose_report() -> bytes:
    def measured(name: str, value: str) -> Dataset:
        item = Dataset()
        concept = Dataset()
        concept.CodeMeaning = name
        item.ConceptNameCodeSequence = [concept]
        number = Dataset()
        number.NumericValue = value
        item.MeasuredValueSequence = [number]
        return item

    ds = make_dataset(with_pixels=False, patient_id="DOSE")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"
    ds.Modality = "SR"
    event = Dataset()
    event.ContentSequence = [measured("Mean CTDIvol", "12.5"), measured("DLP", "300")]
    ds.ContentSequence = [event, measured("DLP", "150"), measured("Mean CTDIvol", "8")]
    return to_bytes(ds)


def test_samples(make_daemon, tmp_path: Path) -> None:
    posted: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        _, peer = make_daemon()
        _, client = make_daemon(
            OrthancPeers={"pacs": [peer.base_url], "ct-archive": [peer.base_url]},
            PythonScripts=sample(
                "auto_route", "conditional_route", "series_to_folder", "dose_report",
                "notify_stable_study", "protect_research", "admin_endpoint", "orthanc_style",
            ),
            StableAge=1,
            ExportFolder=str(tmp_path / "export"),
            NotifyUrl=f"http://127.0.0.1:{server.server_port}/hook",
            UserMetadata={"RoutedTo": 1024, "DoseDLP": 1025, "DoseCTDIvol": 1026,
                          "InstanceCount": 1027},
        )  # fmt: skip
        ct = [client.post("/instances", data=d).json() for d in make_series(2)]
        research = make_dataset(patient_id="RES")
        research.StudyDescription = "Research protocol"
        res = client.post("/instances", data=to_bytes(research)).json()
        dose = client.post("/instances", data=dose_report()).json()
        series, study = ct[0]["ParentSeries"], ct[0]["ParentStudy"]
        # Admin endpoint: make the CT series stable at once.
        assert client.post(f"/dicomd-admin/stable/{series}").status_code == 200
        assert client.post(f"/dicomd-admin/stable/{series}").status_code == 409
        summary = client.get("/dicomd-admin/summary").json()
        assert summary["Instances"] == 4 and summary["Patients"] == 3
        # Conditional routing decided (and forwarded; checked with auto-routing below).
        wait_for(lambda: client.get(f"/series/{series}/metadata/RoutedTo").text == "ct-archive")
        # Series to folder.
        export = tmp_path / "export"
        wait_for(lambda: len(list((export / "PAT1").rglob("*.dcm"))) == 2)
        wait_for(lambda: len(list((export / "RES").rglob("*.dcm"))) == 1)
        assert [p.parent.name for p in (export / "PAT1").rglob("*.dcm")] == ["1 CT"] * 2
        # Dose report.
        dose_study = dose["ParentStudy"]
        wait_for(lambda: client.get(f"/studies/{dose_study}/metadata/DoseDLP").text == "450")
        assert client.get(f"/studies/{dose_study}/metadata/DoseCTDIvol").text == "12.5"
        # Protection.
        wait_for(lambda: client.get(f"/patients/{res['ParentPatient']}/protected").text == "1")
        assert client.get(f"/patients/{ct[0]['ParentPatient']}/protected").text == "0"
        # Notification of stable studies, and the orthanc-style script.
        wait_for(lambda: study in [p["ID"] for p in posted])
        wait_for(lambda: client.get(f"/studies/{study}/metadata/InstanceCount").text == "2")
        assert client.get("/hello/you").text == "Hello you\n"
        # Auto-routing: every instance reached the peer, through durable jobs.
        stored = {a["ID"] for a in [*ct, res, dose]}
        wait_for(lambda: stored <= set(peer.get("/instances").json()), timeout=30)
        jobs = client.get("/jobs?expand").json()
        assert {j["Content"]["Peer"][0] for j in jobs} == {"pacs", "ct-archive"}
        assert failures(client) == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_archive_before_recycling(make_daemon, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    _, client = make_daemon(
        PythonScripts=sample("archive_before_recycling"),
        MaximumPatientCount=1,
        ArchiveFolder=str(archive),
    )
    first = client.post("/instances", data=make_dicom(patient_id="OLD")).json()
    assert client.post("/instances", data=make_dicom(patient_id="NEW")).json()["Status"] == (
        "Success"
    )
    saved = list((archive / first["ParentPatient"]).glob("*.dcm"))
    assert [p.name for p in saved] == [f"{first['ID']}.dcm"]
    assert client.get(f"/patients/{first['ParentPatient']}").status_code == 404


def test_resubmit_failed_forwards(make_daemon, caplog) -> None:
    daemon, client = make_daemon(
        PythonScripts=sample("resubmit_failed_forwards"),
        OrthancPeers={"pacs": {"Url": "http://127.0.0.1:9/", "MaxRetries": 0}},
    )
    failed: list[str] = []
    daemon.events.register(
        FunctionHandler("failures", lambda e: failed.append(e.resource_id), {ChangeType.JobFailure})
    )
    with caplog.at_level(logging.WARNING, logger="dicomd.script"):
        instance = client.post("/instances", data=make_dicom()).json()["ID"]
        wait_for(lambda: "left failed after 3 resubmits" in caplog.text, timeout=30)
        wait_for(lambda: len(failed) >= 4)
        time.sleep(0.5)
    (job,) = client.get("/peers/pacs/dead-letters").json()
    assert job["Content"]["ParentResources"] == [instance]
    assert failed == [job["ID"]] * 4  # the first failure, then one per resubmit
    assert failures(client) == []
