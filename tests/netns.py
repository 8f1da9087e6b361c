"""Running a test scenario inside a private network namespace that has only loopback.

Orthanc 1.10 listens on every interface and has no option against it, so tests that start a
real Orthanc run it (and everything talking to it) in such a namespace (needs root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def netns_available() -> bool:
    return (
        os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("ip") is not None
    )


def run_in_netns(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS...`` in a new network namespace with only ``lo`` up."""
    command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "netns"]
    return subprocess.run(
        [*command, sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
