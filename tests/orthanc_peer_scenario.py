"""Forwarding from dicomd to a real Orthanc, run inside a loopback-only network namespace by
tests/test_orthanc_peer.py. Prints one JSON object of observations for the test to check.

    python orthanc_peer_scenario.py WORKDIR DOWN_SECONDS
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).parent))
from dicomfactory import make_series  # noqa: E402

ORTHANC_AUTH = ("orthanc", "orthanc-pw")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, auth: Any = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/system", auth=auth, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def wait_until(predicate: Any, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


class Orthanc:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "orthanc.json"
        self.config.write_text(
            json.dumps(
                {
                    "Name": "orthanc-peer",
                    "StorageDirectory": str(folder / "storage"),
                    "IndexDirectory": str(folder / "storage"),
                    "HttpPort": self.port,
                    "DicomPort": free_port(),
                    "RemoteAccessAllowed": False,
                    "AuthenticationEnabled": True,
                    "RegisteredUsers": {ORTHANC_AUTH[0]: ORTHANC_AUTH[1]},
                }
            )
        )
        self.log = open(folder / "orthanc.log", "ab")  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["Orthanc", str(self.config)], stdout=self.log, stderr=self.log
        )
        wait_http(self.url, ORTHANC_AUTH)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
            self.proc = None

    def get(self, path: str) -> Any:
        return requests.get(self.url + path, auth=ORTHANC_AUTH, timeout=30).json()

    def count(self) -> int:
        return int(self.get("/statistics")["CountInstances"])

    def new_instance_changes(self) -> int:
        count, since = 0, 0
        while True:
            page = self.get(f"/changes?since={since}&limit=100")
            count += sum(c["ChangeType"] == "NewInstance" for c in page["Changes"])
            since = page["Last"]
            if page["Done"]:
                return count


class Dicomd:
    def __init__(self, folder: Path, orthanc: Orthanc) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "dicomd.json"
        peer = f"{orthanc.url}/"
        self.config.write_text(
            json.dumps(
                {
                    "StorageDirectory": str(folder / "storage"),
                    "HttpPort": self.port,
                    "HttpProcesses": 1,
                    "PeerMaxRetries": 100,
                    "OrthancPeers": {
                        "orthanc": [peer, *ORTHANC_AUTH],
                        "anonymous": [peer],
                    },
                }
            )
        )
        self.log = open(folder / "dicomd.log", "ab")  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dicomd", "serve", "--config", str(self.config)],
            stdout=self.log,
            stderr=self.log,
        )
        wait_http(self.url)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.url + path, timeout=120, **kwargs)

    def get(self, path: str) -> Any:
        return requests.get(self.url + path, timeout=30).json()

    def upload(self, files: list[bytes]) -> list[dict[str, Any]]:
        return [self.post("/instances", data=f).json() for f in files]

    def wait_job(self, path: str, timeout: float) -> dict[str, Any]:
        wait_until(lambda: self.get(path)["State"] in ("Success", "Failure"), timeout)
        return self.get(path)


def scenario(work: Path, down_seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    orthanc = Orthanc(work / "orthanc")
    dicomd = Dicomd(work / "dicomd", orthanc)
    orthanc.start()
    dicomd.start()
    try:
        # Synchronous stores at every level, then an asynchronous one.
        answers = dicomd.upload(make_series(3, patient_id="LEVELS"))
        first = answers[0]
        sync = {}
        for level, key in (
            ("instance", "ID"),
            ("series", "ParentSeries"),
            ("study", "ParentStudy"),
            ("patient", "ParentPatient"),
        ):
            r = dicomd.post("/peers/orthanc/store", json=[first[key]])
            sync[level] = [r.status_code, r.json().get("InstancesCount")]
        out["sync"] = sync
        more = dicomd.upload(make_series(2, patient_id="ASYNC"))
        job = dicomd.post(
            "/peers/orthanc/store",
            json={"Resources": [more[0]["ParentStudy"]], "Asynchronous": True},
        ).json()
        out["async_state"] = dicomd.wait_job(job["Path"], 60)["State"]
        stored_ids = [a["ID"] for a in answers + more]
        out["on_orthanc"] = sorted(set(stored_ids) & set(orthanc.get("/instances")))
        out["expected"] = sorted(stored_ids)
        refused = dicomd.post("/peers/anonymous/store", json=[first["ID"]])
        out["anonymous"] = [refused.status_code, len(dicomd.get("/peers/anonymous/dead-letters"))]

        # The peer stops in the middle of a 200-instance forward and comes back later.
        big = dicomd.upload(make_series(200, patient_id="OUTAGE", rows=256, cols=256))
        before = orthanc.new_instance_changes()
        counted = orthanc.count()
        job = dicomd.post(
            "/peers/orthanc/store",
            json={"Resources": [big[0]["ParentSeries"]], "Asynchronous": True},
        ).json()
        wait_until(lambda: orthanc.count() - counted >= 20, 60, step=0.02)
        orthanc.stop(signal.SIGKILL)  # the peer goes away at once, as in a crash
        out["outage_state_while_down"] = dicomd.get(job["Path"])["State"]
        time.sleep(down_seconds)
        out["outage_state_before_restart"] = dicomd.get(job["Path"])["State"]
        orthanc.start()
        out["outage_state"] = dicomd.wait_job(job["Path"], 180)["State"]
        out["outage_new_instances"] = orthanc.new_instance_changes() - before
        big_ids = {a["ID"] for a in big}
        out["outage_all_there"] = big_ids <= set(orthanc.get("/instances"))

        # dicomd is killed in the middle of a forward, and restarted.
        other = dicomd.upload(make_series(200, patient_id="KILLED", rows=256, cols=256))
        before = orthanc.new_instance_changes()
        counted = orthanc.count()
        job = dicomd.post(
            "/peers/orthanc/store",
            json={"Resources": [other[0]["ParentSeries"]], "Asynchronous": True},
        ).json()
        wait_until(lambda: orthanc.count() - counted >= 20, 60, step=0.02)
        dicomd.kill()
        out["killed_after"] = orthanc.new_instance_changes() - before
        dicomd.start()
        out["killed_state"] = dicomd.wait_job(job["Path"], 120)["State"]
        out["killed_new_instances"] = orthanc.new_instance_changes() - before
        out["killed_all_there"] = {a["ID"] for a in other} <= set(orthanc.get("/instances"))
    finally:
        dicomd.stop()
        orthanc.stop()
    return out


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    result = scenario(Path(sys.argv[1]), float(sys.argv[2]))
    print(json.dumps(result))
