"""``dicomd import``: upload a folder tree of DICOM files and ZIPs to a running dicomd, or to
any Orthanc, with ``POST /instances`` from several concurrent clients.

Only the standard library's HTTP client is used, so the command needs nothing the daemon
does not. Files are chosen by the hot folders' rules (hidden and temporary names are
skipped). Progress goes to stderr; the summary to stdout.
"""

from __future__ import annotations

import base64
import http.client
import json
import queue
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from .inbox import iter_files
from .unpack import ZIP_MAGIC

TIMEOUT = 120.0
SHOWN_FAILURES = 20


class ImportFailed(Exception):
    """The import cannot start (bad URL, server unreachable, refused credentials)."""


class Server:
    """Where to upload: scheme, host, port, path prefix and credentials of a URL."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None) -> None:
        parts = urlsplit(url if "//" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImportFailed(f"not an http(s) URL: {url}")
        self.url = url
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        user = user if user is not None else parts.username
        password = password if password is not None else parts.password
        self.headers: dict[str, str] = {}
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"

    def connect(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=TIMEOUT)
        return http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)


class Client:
    """One keep-alive connection; reconnects once when the server closed it meanwhile.
    Sending an instance twice is harmless: the second answer is ``AlreadyStored``."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> tuple[int, bytes]:
        headers = dict(self.server.headers)
        if content_type:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self.server.connect()
            try:
                self._conn.request(method, self.server.prefix + path, body, headers)
                response = self._conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _error_text(status: int, body: bytes) -> str:
    """Orthanc's JSON error body says why; fall back to the status line."""
    try:
        answer = json.loads(body)
        detail = answer.get("Details") or answer.get("Message")
    except (ValueError, AttributeError):
        detail = None
    return f"HTTP {status}" + (f": {detail}" if detail else "")


@dataclass
class Tally:
    """Counts shared by the upload threads (under ``lock``)."""

    files: int
    done: int = 0
    stored: int = 0
    already: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: Path, answer: Any, error: str | None) -> None:
        answers = answer if isinstance(answer, list) else [answer]
        if error is None and not answers:
            error = "the ZIP archive holds no DICOM file"
        with self.lock:
            self.done += 1
            if error is not None:
                self.failed.append((path, error))
                return
            statuses = [a.get("Status") if isinstance(a, dict) else None for a in answers]
            self.stored += sum(s == "Success" for s in statuses)
            self.already += sum(s == "AlreadyStored" for s in statuses)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done / elapsed
        left = (self.files - self.done) / rate if rate else 0
        percent = 100 * self.done / max(self.files, 1)
        return (
            f"{self.done}/{self.files} files {percent:3.0f}%  stored {self.stored}, already "
            f"{self.already}, failed {len(self.failed)}  {rate:.0f} files/s  "
            f"{int(left) // 60}:{int(left) % 60:02} left"
        )


def upload_one(client: Client, path: Path) -> tuple[Any, str | None]:
    """Upload one file; returns Orthanc's answer (a list for a ZIP) or the reason it failed."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    kind = "application/zip" if data[:4] == ZIP_MAGIC else "application/dicom"
    try:
        status, body = client.request("POST", "/instances", data, kind)
    except (OSError, http.client.HTTPException) as exc:
        return None, f"upload failed: {exc}"
    if status != 200:
        return None, _error_text(status, body)
    try:
        return json.loads(body), None
    except ValueError:
        return None, "the server's answer is not JSON"


class Progress:
    """A self-updating line when stderr is a terminal; otherwise a line every few seconds."""

    def __init__(self, tally: Tally, stream: IO[str]) -> None:
        self.tally = tally
        self.stream = stream
        self.tty = stream.isatty()
        self.period = 0.2 if self.tty else 5.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="import-progress", daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._show(final=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._show()

    def _show(self, final: bool = False) -> None:
        if self.tty:
            width = 24
            filled = width * self.tally.done // max(self.tally.files, 1)
            bar = "#" * filled + "-" * (width - filled)
            end = "\n" if final else ""
            self.stream.write(f"\r[{bar}] {self.tally.line()}\x1b[K{end}")
        elif not final:
            self.stream.write(self.tally.line() + "\n")
        self.stream.flush()


def collect(paths: Iterable[Path]) -> list[Path]:
    """Every file to upload: named files as given, folders walked by the hot-folder rules."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(iter_files(path)))
        elif path.is_file():
            files.append(path)
        else:
            raise ImportFailed(f"no such file or folder: {path}")
    return files


def check_server(server: Server) -> str:
    """Fail early and clearly when the server cannot be reached or refuses us."""
    client = Client(server)
    try:
        status, body = client.request("GET", "/system")
    except (OSError, http.client.HTTPException) as exc:
        raise ImportFailed(f"cannot reach {server.url}: {exc}") from exc
    finally:
        client.close()
    if status == 401:
        raise ImportFailed(f"{server.url} refused the credentials (HTTP 401); use --user")
    if status != 200:
        raise ImportFailed(f"{server.url}/system answered {_error_text(status, body)}")
    try:
        return str(json.loads(body).get("Name", "?"))
    except (ValueError, AttributeError):
        return "?"


def run_import(
    paths: list[Path],
    server: Server,
    concurrency: int = 4,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Upload every file; exit status 0 when all were stored or already there, 1 if not."""
    out = out or sys.stdout
    err = err or sys.stderr
    files = collect(paths)
    name = check_server(server)
    err.write(f"uploading {len(files)} file(s) to {server.url} ({name}), {concurrency} clients\n")
    tally = Tally(len(files))
    work: queue.SimpleQueue[Path] = queue.SimpleQueue()
    for path in files:
        work.put(path)

    def worker() -> None:
        client = Client(server)
        try:
            while True:
                try:
                    path = work.get_nowait()
                except queue.Empty:
                    return
                answer, error = upload_one(client, path)
                tally.add(path, answer, error)
        finally:
            client.close()

    with Progress(tally, err):
        threads = [threading.Thread(target=worker) for _ in range(max(1, concurrency))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for path, reason in tally.failed[:SHOWN_FAILURES]:
        err.write(f"failed: {path}: {reason}\n")
    if len(tally.failed) > SHOWN_FAILURES:
        err.write(f"... and {len(tally.failed) - SHOWN_FAILURES} more failed file(s)\n")
    elapsed = time.monotonic() - tally.started
    out.write(
        f"{len(files)} file(s) in {elapsed:.1f} s: {tally.stored} instance(s) stored, "
        f"{tally.already} already stored, {len(tally.failed)} file(s) failed\n"
    )
    return 1 if tally.failed else 0
