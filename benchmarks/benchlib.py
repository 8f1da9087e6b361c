"""What the benchmark scripts share: running dicomd from the checkout, Orthanc's control
tool, the loopback-only network namespace, and small helpers."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NETNS_MARK = "DICOMD_BENCH_IN_NETNS"


class RunError(RuntimeError):
    """One benchmark run failed (its cell is shown as such)."""


def reexec_in_netns(in_netns: Path) -> None:
    """Run the calling script again inside a loopback-only network namespace (does not
    return)."""
    os.environ[NETNS_MARK] = "1"
    script = str(Path(sys.argv[0]).resolve())
    argv = ["sh", str(in_netns), sys.executable, script, *sys.argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp("sh", argv)


def loopback_only() -> bool:
    """True when the current network namespace has no interface but loopback."""
    return [name for _idx, name in socket.if_nameindex()] == ["lo"]


def load_orthanc_ctl(bench_dir: Path) -> ModuleType:
    """Import shared/bench/orthanc_ctl.py (the shared tool, used as is)."""
    if (
        not shutil.which(os.environ.get("ORTHANC_BIN", "Orthanc"))
        and Path("/usr/sbin/Orthanc").exists()
    ):
        os.environ["ORTHANC_BIN"] = "/usr/sbin/Orthanc"
    sys.path.insert(0, str(bench_dir))
    return importlib.import_module("orthanc_ctl")


def dicomd_env() -> dict[str, str]:
    """Environment for dicomd: the checkout's daemon/ first on PYTHONPATH."""
    env = dict(os.environ)
    env.pop(NETNS_MARK, None)
    daemon_dir = PROJECT_ROOT / "daemon"
    if daemon_dir.is_dir():
        parts = [str(daemon_dir), *filter(None, [env.get("PYTHONPATH")])]
        env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def check_dicomd(cmd: list[str]) -> str | None:
    """Return why dicomd cannot run, or None when `import dicomd.cli` works."""
    if cmd[:3] != [sys.executable, "-m", "dicomd"]:
        return None  # a custom command: its start will tell
    probe = subprocess.run(
        [cmd[0], "-c", "import dicomd.cli"],
        env=dicomd_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode == 0:
        return None
    tail = probe.stderr.strip().splitlines()[-1:] or ["(no output)"]
    return f"`import dicomd.cli` fails: {tail[0]}"


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (dicomd forks HTTP helper processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def tree_cpu_seconds(pid: int | None) -> tuple[float, float]:
    """User and system CPU seconds used so far by a process and its live descendants."""
    user = system = 0.0
    if pid is None:
        return user, system
    tick = os.sysconf("SC_CLK_TCK")
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) / tick
        system += int(fields[12]) / tick
    return user, system


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_tail(path: Path, n: int = 30) -> str:
    """The last ``n`` lines of a log file ("" if it cannot be read)."""
    try:
        return b"\n".join(path.read_bytes().splitlines()[-n:]).decode("utf-8", "replace")
    except OSError:
        return ""


def log(msg: str) -> None:
    """Progress goes to stderr, so that stdout holds only the report."""
    print(msg, file=sys.stderr, flush=True)


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], timeout: float, tail: Callable[[], str]
) -> float:
    """Poll GET /system until 200; raise RunError with the log tail otherwise."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RunError(f"exited early (rc={proc.returncode}), log tail:\n{tail()}")
        try:
            if requests.get(url + "/system", timeout=1).status_code == 200:
                return time.monotonic() - t0
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RunError(f"no answer on {url}/system after {timeout:.0f} s, log tail:\n{tail()}")


class DicomdServer:
    """dicomd in the foreground, with its own configuration (``config`` added to the
    port and folders), storage and index in ``folder``."""

    def __init__(self, cmd: list[str], folder: Path, config: dict[str, Any]) -> None:
        self.cmd = cmd
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage = folder / "storage"
        self.index = folder / "index"
        self.log_path = folder / "dicomd.log"
        self.config_path = folder / "config.json"
        full = {
            "Name": "DICOMD-BENCH",
            "HttpPort": self.port,
            "StorageDirectory": "storage",
            "IndexDirectory": "index",
            **config,
        }
        folder.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(full, indent=2))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float) -> float:
        """Start and wait for GET /system; return the start-up time in seconds."""
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [*self.cmd, "serve", "--config", str(self.config_path)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                env=dicomd_env(),
                start_new_session=True,  # its own group: stop() can reach any helper it forks
            )
        return wait_ready(self.url, self.proc, timeout, self.log_tail)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL to its process group after `timeout`; return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"dicomd pid {self.proc.pid} ignored SIGTERM for {timeout} s; killing it")
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def log_tail(self, n: int = 40) -> str:
        return read_tail(self.log_path, n)


class OrthancServer:
    """A private Orthanc through shared/bench/orthanc_ctl.py, with the same interface;
    ``config`` holds the keys both servers get (its ``StableAge`` goes to orthanc_ctl)."""

    def __init__(
        self, ctl: ModuleType, folder: Path, compression: bool, config: dict[str, Any]
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        extra = {k: v for k, v in config.items() if k not in ("StableAge", "StorageCompression")}
        self.orthanc = ctl.Orthanc(
            http_port=free_port(),
            dicom_port=free_port(),
            compression=compression,
            stable_age=config["StableAge"],
            extra=extra,
            workdir=str(folder),
            dicom_enabled=False,
        )
        self.url = str(self.orthanc.url)
        self.storage = Path(self.orthanc.storage)
        self.index = Path(self.orthanc.index)

    @property
    def pid(self) -> int | None:
        pid = self.orthanc.pid
        return int(pid) if pid is not None else None

    def start(self, timeout: float) -> float:
        try:
            self.orthanc.start(timeout=timeout)
        except RuntimeError as exc:
            raise RunError(str(exc)) from None
        return float(self.orthanc.startup_s)

    def stop(self, timeout: float = 30) -> int | None:
        self.orthanc.stop(timeout=timeout)
        proc = self.orthanc.proc
        return proc.returncode if proc is not None else None

    def log_tail(self, n: int = 40) -> str:
        return str(self.orthanc.log_tail(n))
