"""Ask a real Orthanc 1.10.1 and dicomd the same questions, run inside a loopback-only network
namespace (tests/netns.py) by the tests that compare both, or by hand when a behaviour is in
doubt:

    unshare -n sh -c 'ip link set lo up && exec "$@"' x python orthanc_compare.py WORKDIR SPEC

SPEC is a JSON file: ``{"config": {...}, "files": [paths], "requests": [...]}``. Both servers
get the same ``config`` (Orthanc's keys), then every file is uploaded to both, then each
request (``{"method": "GET", "path": "/instances/{instance0}/tags", "headers": {},
"body": "..."}``) is sent to both. ``{instanceN}``, ``{seriesN}``, ``{studyN}`` and
``{patientN}`` in a path stand for the resources of the N-th file (Orthanc and dicomd compute
the same IDs). Prints one JSON list: per request, both answers (status, content type, body as
JSON when it parses, else text, else its length and MD5).
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/system", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


class Server:
    """Orthanc or dicomd on a free loopback port, without authentication."""

    def __init__(self, kind: str, folder: Path, config: dict[str, Any]) -> None:
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        settings = {
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "storage"),
            "HttpPort": self.port,
            "DicomPort": free_port(),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            **config,
        }
        if kind == "dicomd":
            settings.setdefault("HttpProcesses", 1)
        path = folder / "config.json"
        path.write_text(json.dumps(settings))
        command = ["Orthanc", str(path)]
        if kind == "dicomd":
            command = [sys.executable, "-m", "dicomd", "serve", "--config", str(path)]
        self.log = open(folder / "server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=self.log)
        wait_http(self.url)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()


def answer(response: requests.Response) -> dict[str, Any]:
    body: Any
    try:
        body = response.json()
    except ValueError:
        try:
            body = response.content.decode("utf-8")
            if any(ord(c) < 9 for c in body):
                raise UnicodeDecodeError("utf-8", b"", 0, 1, "binary")
        except UnicodeDecodeError:
            body = {
                "length": len(response.content),
                "md5": hashlib.md5(response.content).hexdigest(),  # noqa: S324
            }
    return {
        "status": response.status_code,
        "content_type": response.headers.get("Content-Type"),
        "body": body,
    }


class _Names(dict):  # type: ignore[type-arg]
    """Placeholders of files that were not stored stay as they are."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def main(workdir: str, spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    folder = Path(workdir)
    servers = [
        Server(kind, folder / kind, spec.get("config", {})) for kind in ("orthanc", "dicomd")
    ]
    try:
        names: dict[str, str] = {}
        for n, path in enumerate(spec.get("files", [])):
            data = Path(path).read_bytes()
            print("upload", n, path, file=sys.stderr, flush=True)
            for server in servers:
                r = requests.post(server.url + "/instances", data=data, timeout=60)
                if r.status_code == 200 and server.kind == "orthanc":
                    up = r.json()
                    names[f"instance{n}"] = up["ID"]
                    names[f"series{n}"] = up["ParentSeries"]
                    names[f"study{n}"] = up["ParentStudy"]
                    names[f"patient{n}"] = up["ParentPatient"]
        results = []
        for request in spec.get("requests", []):
            path = request["path"].format_map(_Names(names))
            item: dict[str, Any] = {"request": {**request, "path": path}}
            for server in servers:
                r = requests.request(
                    request.get("method", "GET"),
                    server.url + path,
                    headers=request.get("headers", {}),
                    data=request.get("body"),
                    timeout=60,
                )
                item[server.kind] = answer(r)
            results.append(item)
        print(json.dumps(results))
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
