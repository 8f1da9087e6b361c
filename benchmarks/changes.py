"""How fast /changes pages with a million entries in the log, against a log of ten.

Run from the project root: ``python benchmarks/changes.py [--entries 1000000]``. It builds an
index whose change log holds that many entries (written straight into the SQLite file, which
takes a few seconds, instead of storing a million instances), starts ``dicomd serve`` on it
at a loopback port, and times ``GET /changes`` at the start, middle and end of the log, and
``?last``. dicomd alone: Orthanc is not needed.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchlib import free_port

ROOT = Path(__file__).resolve().parent.parent


def fill(index_dir: Path, entries: int) -> None:
    """Let dicomd create its schema, then add ``entries`` NewInstance changes."""
    sys.path.insert(0, str(ROOT / "daemon"))
    from dicomd.storage.sqlite_index import SQLiteIndex

    SQLiteIndex(index_dir).close()
    db = sqlite3.connect(index_dir / SQLiteIndex.FILE_NAME)
    db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO changes (change_type, resource_id, level, public_id, date) "
        "SELECT 2, NULL, 3, printf('%08x-00000000-00000000-00000000-00000000', i), "
        "'20261128T120000' FROM n",
        (entries,),
    )
    db.commit()
    db.close()


def serve(folder: Path, port: int) -> subprocess.Popen[bytes]:
    config = folder / "dicomd.json"
    config.write_text(json.dumps({"StorageDirectory": "data", "HttpPort": port}))
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'daemon'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomd", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/system", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("dicomd did not start")


def timed(url: str, repeat: int) -> tuple[float, dict]:
    samples = []
    answer: dict = {}
    for _ in range(repeat):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as r:
            answer = json.loads(r.read())
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), answer


def measure(entries: int, repeat: int) -> list[tuple[str, float, int]]:
    with tempfile.TemporaryDirectory(prefix="dicomd-changes-") as tmp:
        folder = Path(tmp)
        fill(folder / "data", entries)
        port = free_port()
        proc = serve(folder, port)
        try:
            base = f"http://127.0.0.1:{port}/changes"
            rows = []
            for label, query in (
                ("first page", "?since=0&limit=100"),
                ("middle page", f"?since={entries // 2}&limit=100"),
                ("last page", f"?since={max(entries - 50, 0)}&limit=100"),
                ("?last", "?last"),
            ):
                ms, answer = timed(base + query, repeat)
                rows.append((label, ms, len(answer["Changes"])))
            return rows
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50, help="requests per cell (median)")
    args = parser.parse_args()
    small = measure(10, args.repeat)
    large = measure(args.entries, args.repeat)
    print(f"GET /changes, median of {args.repeat} requests (ms)")
    print(f"{'request':<14}{'log of 10':>14}{f'log of {args.entries:,}':>22}")
    for (label, ms_small, n_small), (_, ms_large, n_large) in zip(small, large, strict=True):
        print(f"{label:<14}{ms_small:>7.2f} ({n_small:>3}){ms_large:>15.2f} ({n_large:>3})")
    print("(in brackets: changes in the answer)")


if __name__ == "__main__":
    main()
