"""The processes serving the REST API, so uploads use every core despite Python's GIL.

With ``HttpProcesses`` above 1, the main process holds the port (a socket bound with
``SO_REUSEPORT``, not listening), repairs the store, then starts that many helpers; each binds
its own listening socket to the same port, so that the kernel spreads connections over them,
and builds its own index connections and file store over the same folders to serve the same
app. The main process serves no HTTP: it runs the background work (event delivery to
scripts, schedules, jobs, hot folders), which thus never competes with uploads for a GIL;
script filters run in every process. A helper reads its configuration from its standard
input and then watches it: when the main process exits, even by ``kill -9``, the pipe closes
and the helper stops.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from ..config import Config, build_config

log = logging.getLogger(__name__)


class HelperProcesses:
    """The helper processes of one daemon. Once they all serve (:meth:`watch`), one that
    exits while the daemon runs (a crash, ``kill -9``) is started again, since the main
    process serves no HTTP itself; at most once every ``RESTART_SECONDS`` per helper, so
    that one that cannot start does not spin."""

    RESTART_CHECK_SECONDS = 1.0
    RESTART_SECONDS = 5.0

    def __init__(self, config: Config, port: int, count: int) -> None:
        self._config = config
        self._port = port
        self._count = count
        self._procs: dict[int, subprocess.Popen[bytes]] = {}  # by slot
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._spawned: dict[int, float] = {}  # slot -> when its process was started

    def _spawn(self, slot: int) -> subprocess.Popen[bytes]:
        request = {
            "raw": dict(self._config.raw),
            "base_dir": str(self._config.base_dir),
            "port": self._port,  # the main process's, even when the configuration says 0
            "slot": slot,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicomd", "serve-helper"], stdin=subprocess.PIPE
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        proc.stdin.flush()
        self._spawned[slot] = time.monotonic()
        return proc

    def start(self) -> None:
        with self._lock:
            for slot in range(1, self._count + 1):
                self._procs[slot] = self._spawn(slot)
        log.info(
            "%d helper process(es) serving HTTP: pids %s",
            self._count,
            ", ".join(str(p.pid) for p in self._procs.values()),
        )

    def watch(self) -> None:
        """From now on, start again a helper that exits."""
        self._watcher = threading.Thread(
            target=self._watch, name="dicomd-helper-watch", daemon=True
        )
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(self.RESTART_CHECK_SECONDS):
            with self._lock:
                if self._stopping.is_set():
                    return
                for slot, proc in list(self._procs.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    if time.monotonic() - self._spawned[slot] < self.RESTART_SECONDS:
                        continue
                    log.error(
                        "helper process %d exited with status %d; starting another", proc.pid, code
                    )
                    if proc.stdin is not None:
                        proc.stdin.close()
                    self._procs[slot] = self._spawn(slot)

    def exited(self) -> bool:
        """Whether a helper has exited (and not been started again yet)."""
        with self._lock:
            return any(proc.poll() is not None for proc in self._procs.values())

    def stop(self, timeout: float = 8) -> None:
        """Ask the helpers to finish their requests and exit; kill those that do not."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None
        with self._lock:
            procs = list(self._procs.values())
            self._procs.clear()
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in procs:
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("helper process %d did not stop; killing it", proc.pid)
                proc.kill()
                proc.wait()
                continue
            if code != 0:
                log.warning("helper process %d exited with status %d", proc.pid, code)


class Served(Protocol):
    """What a helper process runs: a daemon that serves until stopped."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def run_helper(stdin: IO[bytes], build: Callable[[Config, int], Served]) -> int:
    """The body of a helper process (``dicomd serve-helper``): read the request of the main
    process, serve the daemon that ``build`` makes of its configuration and slot, and stop
    when asked (SIGTERM) or when the main process goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    request: dict[str, Any] = json.loads(stdin.readline())
    config = build_config(request["raw"], Path(request["base_dir"]))
    config = dataclasses.replace(config, http_port=int(request["port"]))
    served = build(config, int(request["slot"]))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_parent() -> None:
        stdin.read()  # returns at EOF: the main process closed the pipe or died
        stop.set()

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    served.start()
    stop.wait()
    served.stop()
    return 0
