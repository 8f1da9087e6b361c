"""Hot-folder benchmark: import rate of a hot folder against REST uploads of the same files.

Usage, from the project root (no Orthanc, no root needed)::

    python benchmarks/hotfolder.py               # 10,000 small CT files (64x64, about 9 kB)
    python benchmarks/hotfolder.py --files 2000  # a smaller run, for development
    python benchmarks/hotfolder.py --repeat 3    # median of 3 runs per row

What it does:

1. Generates once, with ``shared/bench/gen_dicom.py``, a deterministic workload of small CT
   files and caches it under ``--workdir`` (default ``<system temp>/dicomd-bench``).
2. **REST**: starts a fresh dicomd (its defaults: ``HttpProcesses`` 0) with empty storage and
   uploads every file with ``POST /instances`` from ``--clients`` threads, each with its own
   keep-alive connection, files preloaded in memory: the fastest a client can feed it.
3. **dicomd import**: the same, with ``dicomd import --concurrency C`` reading the files.
4. **hot folder**: starts a fresh dicomd watching an empty inbox, moves every file into the
   inbox at once (renames on one file system) and waits until ``/statistics`` counts them all
   and the inbox is empty. The clock starts before the first rename.
5. Prints a Markdown table and checks the target: the hot folder at no less than 80% of the
   REST rate. Every run must store every file.

dicomd runs as ``python -m dicomd serve`` with the checkout's ``daemon/`` first on
``PYTHONPATH``. Exit status: 0 when the target passed, 1 when not, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import PROJECT_ROOT, dicomd_env, free_port

TARGET = 0.8
PER_SERIES = 250  # files per series; 2 studies x 2 series per patient


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--files", type=int, default=10_000, help="a multiple of 1000")
    ap.add_argument("--size", type=int, default=64, help="rows and columns of each image")
    ap.add_argument("--clients", type=int, default=4, help="REST clients")
    ap.add_argument("--repeat", type=int, default=1, help="runs per row; the median is shown")
    ap.add_argument("--shared", type=Path, default=PROJECT_ROOT.parent / "shared")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dicomd-bench")
    args = ap.parse_args(argv)
    if args.files < 1000 or args.files % 1000:
        ap.error("--files must be a multiple of 1000")
    return args


def workload(args: argparse.Namespace) -> Path:
    """The cached workload folder, generated on first use."""
    data = args.workdir / "data" / f"hotfolder-{args.files}-{args.size}"
    marker = data.with_name(data.name + ".complete")  # beside it: dicomd import takes all
    if marker.exists():
        return data
    shutil.rmtree(data, ignore_errors=True)
    log(f"generating {args.files} files of {args.size}x{args.size} under {data} ...")
    gen = args.shared / "bench" / "gen_dicom.py"
    subprocess.run(
        [sys.executable, str(gen), "--out", str(data), "--patients", str(args.files // 1000)]
        + ["--studies", "2", "--series", "2", "--instances-per-series", str(PER_SERIES)]
        + ["--rows", str(args.size), "--cols", str(args.size), "--seed", "4"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    marker.touch()
    return data


def dicom_files(data: Path) -> list[Path]:
    return sorted(p for p in data.rglob("*.dcm"))


class Dicomd:
    """A fresh ``dicomd serve`` in ``folder``."""

    def __init__(self, folder: Path, **settings: Any) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.folder = folder
        self.port = free_port()
        config = {"HttpPort": self.port, "StorageDirectory": "storage", "StableAge": 2}
        config.update(settings)
        (folder / "dicomd.json").write_text(json.dumps(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Dicomd:
        with open(self.folder / "dicomd.log", "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dicomd", "serve", "--config", "dicomd.json"],
                cwd=self.folder,
                env=dicomd_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.get("/system")["Name"]:
                    return self
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.1)
        raise RuntimeError(f"dicomd did not start; see {self.folder / 'dicomd.log'}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def count(self) -> int:
        return int(self.get("/statistics")["CountInstances"])


def upload_rest(server: Dicomd, files: list[Path], clients: int) -> float:
    """Seconds to POST every file, ``clients`` at once, files preloaded in memory."""
    bodies = [p.read_bytes() for p in files]
    cursor = iter(range(len(bodies)))
    lock = threading.Lock()
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                break
            conn.request("POST", "/instances", bodies[i], {"Content-Type": "application/dicom"})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                errors.append(f"{files[i]}: HTTP {answer.status}")
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} upload(s) failed, first: {errors[0]}")
    return time.monotonic() - started


def run_import_command(server: Dicomd, data: Path, clients: int) -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "dicomd", "import", str(data), "--url", server.url]
        + ["--concurrency", str(clients)],
        env=dicomd_env(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def run_hot_folder(folder: Path, data: Path, files: list[Path]) -> float:
    """Seconds from the first file moved into the inbox until all are stored."""
    staging, inbox = folder / "staging", folder / "inbox"
    shutil.copytree(data, staging)
    moves = [(staging / p.relative_to(data), inbox / p.relative_to(data)) for p in files]
    with Dicomd(folder / "server", HotFolders=[{"Path": str(inbox)}]) as server:
        for directory in {dst.parent for _src, dst in moves}:
            directory.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        for src, dst in moves:
            os.rename(src, dst)
        while server.count() < len(files) or any(f.is_file() for f in inbox.rglob("*")):
            time.sleep(0.05)
        return time.monotonic() - started


def measure(label: str, runs: int, once: Callable[[], float], n: int) -> dict[str, Any]:
    seconds = []
    for i in range(runs):
        value = once()
        log(f"  {label} run {i + 1}: {value:.1f} s, {n / value:.0f} files/s")
        seconds.append(value)
    median = statistics.median(seconds)
    return {"label": label, "seconds": median, "rate": n / median}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.shared / "bench" / "gen_dicom.py").exists():
        log(f"shared tools not found under {args.shared} (use --shared DIR)")
        return 2
    data = workload(args)
    files = dicom_files(data)
    n, mb = len(files), sum(p.stat().st_size for p in files) / 1e6
    runs = args.workdir / "runs" / f"hotfolder-{os.getpid()}"

    def rest() -> float:
        with Dicomd(runs / "rest") as server:
            seconds = upload_rest(server, files, args.clients)
            assert server.count() == n, "REST: not every file was stored"
            return seconds

    def import_command() -> float:
        with Dicomd(runs / "import") as server:
            seconds = run_import_command(server, data, args.clients)
            assert server.count() == n, "dicomd import: not every file was stored"
            return seconds

    def hot_folder() -> float:
        shutil.rmtree(runs / "hot", ignore_errors=True)
        return run_hot_folder(runs / "hot", data, files)

    try:
        rows = [
            measure(f"REST, {args.clients} clients", args.repeat, rest, n),
            measure(f"dicomd import, {args.clients} clients", args.repeat, import_command, n),
            measure("hot folder", args.repeat, hot_folder, n),
        ]
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    ratio = rows[2]["rate"] / rows[0]["rate"]
    print(
        f"{n} files of {args.size}x{args.size} ({mb:.1f} MB), {os.cpu_count()} CPUs, "
        f"median of {args.repeat} run(s), fresh dicomd (defaults) per run\n"
    )
    print("| path | seconds | files/s | vs REST |")
    print("|---|---:|---:|---:|")
    for row in rows:
        share = row["rate"] / rows[0]["rate"]
        print(f"| {row['label']} | {row['seconds']:.1f} | {row['rate']:.0f} | {share:.2f} |")
    status = "PASS" if ratio >= TARGET else "FAIL"
    print(f"\n**{status}** hot folder at least {TARGET:.0%} of the REST rate: {ratio:.2f}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
