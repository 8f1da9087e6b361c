"""What the benchmark scripts share: running dicomd from the checkout, Orthanc's control
tool, the loopback-only network namespace, and small helpers."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

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
