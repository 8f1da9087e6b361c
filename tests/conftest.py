"""Fixtures: a configuration in tmp_path, a real daemon on a loopback port, an HTTP client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from dicomd.app import Daemon
from dicomd.config import load_config

sys.path.insert(0, str(Path(__file__).parent))


class Client(requests.Session):
    """A requests session bound to a base URL."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return super().request(method, self.base_url + url, *args, **kwargs)


def write_config(directory: Path, **settings: Any) -> Path:
    config = {"StorageDirectory": "storage", "IndexDirectory": "index", "HttpPort": 0}
    config.update(settings)
    path = directory / "dicomd.json"
    path.write_text(json.dumps(config, indent=2))
    return path


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., tuple[Daemon, Client]]]:
    """Start an in-process daemon with the given Orthanc-style settings."""
    started: list[Daemon] = []

    def start(**settings: Any) -> tuple[Daemon, Client]:
        folder = tmp_path / f"daemon{len(started)}"
        folder.mkdir()
        settings.setdefault("HttpProcesses", 1)
        daemon = Daemon(load_config(write_config(folder, **settings)))
        daemon.start()
        started.append(daemon)
        client = Client(f"http://127.0.0.1:{daemon.http_port}")
        clients.append(client)
        return daemon, client

    threads_before = set(threading.enumerate())
    clients: list[Client] = []
    yield start
    for client in clients:
        client.close()  # its kept-alive sockets, before the daemons go
    for daemon in started:
        daemon.stop()
    leaked = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture
def daemon_client(make_daemon: Callable[..., tuple[Daemon, Client]]) -> tuple[Daemon, Client]:
    return make_daemon()


@pytest.fixture
def client(daemon_client: tuple[Daemon, Client]) -> Client:
    return daemon_client[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, step: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something true, and return that; fail the test
    if it does not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not reached within {timeout} s")


def run_dicomd(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``dicomd`` command line in a fresh interpreter; its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "dicomd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def children_of(pid: int) -> list[int]:
    """The child processes of ``pid``, whichever of its threads started them."""
    children: list[int] = []
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        try:
            children += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DaemonProcess:
    """``dicomd serve`` in a child process, for tests that kill it."""

    def __init__(self, folder: Path, **settings: Any) -> None:
        self.folder = folder
        self.port = free_port()
        self.config_path = write_config(folder, HttpPort=self.port, **settings)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "dicomd.log"

    def start(self, timeout: float = 30, program: list[str] | None = None) -> DaemonProcess:
        """Run ``dicomd serve``, or ``program`` (a Python script given the configuration
        file as its first argument, for tests that run a daemon with their own handlers)."""
        argv = [sys.executable, "-m", "dicomd", "serve", "--config", str(self.config_path)]
        if program is not None:
            argv = [sys.executable, *program[:1], str(self.config_path), *program[1:]]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dicomd exited early:\n{self.log_path.read_text()}")
            try:
                if requests.get(self.url + "/system", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"dicomd did not start:\n{self.log_path.read_text()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the main process, then wait until it and its helpers are gone (after a
        SIGKILL, helpers notice and exit by themselves)."""
        if self.proc is not None and self.proc.poll() is None:
            helpers = children_of(self.proc.pid)
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
            deadline = time.monotonic() + 20
            while any(alive(pid) for pid in helpers) and time.monotonic() < deadline:
                time.sleep(0.05)

    def client(self) -> Client:
        return Client(self.url)


@pytest.fixture
def daemon_process(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    procs: list[DaemonProcess] = []

    def make(**settings: Any) -> DaemonProcess:
        proc = DaemonProcess(tmp_path, **settings)
        procs.append(proc)
        return proc

    yield make
    for proc in procs:
        proc.kill(signal.SIGTERM)
