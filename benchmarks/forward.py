"""Forwarding benchmark: ``POST /peers/{name}/store`` from dicomd and from Orthanc 1.10, to a
dicomd peer and to an Orthanc peer, same workload, same machine, same run (issue 8).

Usage, from the project root (needs root, for a private network namespace)::

    python benchmarks/forward.py                 # full run: 1000 CT 512x512 and 1000 CT 64x64
    python benchmarks/forward.py --quick         # 100 instances of 512x512, for development
    python benchmarks/forward.py --sizes 512     # the large images only
    python benchmarks/forward.py --repeat 3      # median of 3 forwards per cell

What it does, for each workload (``--sizes``, default 512x512 and 64x64 pixels):

1. Generates once, with ``shared/bench/gen_dicom.py``, a deterministic CT workload (10 patients
   x 2 studies x 2 series x 25 instances = 1000 files; the 512x512 one is the ingest
   benchmark's and shares its cache under ``--workdir``).
2. Starts a **source** dicomd and a source Orthanc, each with empty storage, and loads the
   workload into both with ``shared/bench/bench_ingest.py`` (1 client; its rate is reported as
   each server's ingest rate over one connection, for reference).
3. For each mode, repetition and pair (dicomd -> dicomd, dicomd -> Orthanc, Orthanc -> Orthanc,
   Orthanc -> dicomd): starts a **fresh target** with empty storage, points the source's peer
   ``target`` at it (``PUT /peers/target``), and times the forward:

   - ``sync``: one ``POST /peers/target/store`` with every patient of the source in one call
     (``{"Resources": [...10 patients], "Synchronous": true}``): one job, sent one instance
     after the other over one connection, the clock stopping at the answer;
   - ``async``: one ``{"Resources": [study], "Asynchronous": true}`` call per study (20 jobs)
     submitted at once, the source running ``--concurrent-jobs`` (default 2, both servers'
     default) of them side by side; the clock stops when the source reports the last job
     ``Success``.

   Then checks that the target holds exactly the source's instances (``/statistics``
   ``CountInstances`` and the ``/instances`` ID sets) and that 3 sampled files are
   byte-identical, and stops the target.
4. Prints a Markdown table (instances/s, MB/s, the rate relative to Orthanc -> Orthanc, CPU per
   instance of source and target, bytes the source wrote to disk per instance) and writes every
   raw result to a JSON file (``--json-out``, default under the work folder).

Orthanc 1.10 binds every interface, so the script re-executes itself through
``shared/bench/in_netns.sh``: both sources, the targets and the driver run in a network
namespace that has only loopback. dicomd is started as ``python -m dicomd serve --config FILE``
with ``daemon/`` on ``PYTHONPATH`` (``--dicomd-cmd`` overrides the command).

Exit status: 0 when every forward verified, 1 when one did not, 2 when the benchmark could not
run at all.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import requests

import benchlib
from benchlib import (
    NETNS_MARK,
    PROJECT_ROOT,
    RunError,
    check_dicomd,
    load_orthanc_ctl,
    log,
    loopback_only,
    process_tree,
    read_tail,
    reexec_in_netns,
)

SERVERS = ("dicomd", "orthanc")
TITLE = {"dicomd": "dicomd", "orthanc": "Orthanc"}
# (source, target), in the order they run and are shown; Orthanc -> Orthanc is the reference.
PAIRS = (("dicomd", "dicomd"), ("dicomd", "orthanc"), ("orthanc", "orthanc"), ("orthanc", "dicomd"))
PAIR_CODES = {"dd": PAIRS[0], "do": PAIRS[1], "oo": PAIRS[2], "od": PAIRS[3]}
REFERENCE = ("orthanc", "orthanc")
MODES = ("sync", "async")
PEER = "target"
# Workload shape per patient: 2 studies x 2 series x 25 instances = 100 instances.
STUDIES, SERIES, PER_SERIES, SEED = 2, 2, 25, 1
SAMPLED_FILES = 3
# Settings shared by every server, sources and targets alike.
COMMON_CONFIG: dict[str, Any] = {
    "StorageCompression": False,
    "MaximumStorageSize": 0,
    "MaximumPatientCount": 0,
    "RemoteAccessAllowed": False,
    "AuthenticationEnabled": False,
    "DicomServerEnabled": False,
    "StableAge": 2,
    "JobsHistorySize": 1000,  # the async mode polls every job until it succeeded
}


# --------------------------------------------------------------------------- setup


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--shared",
        type=Path,
        default=PROJECT_ROOT.parent / "shared",
        help="the shared/ folder holding bench/ (default: ../shared beside the project)",
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "dicomd-bench",
        help="cache for the workloads, server folders, logs and results",
    )
    ap.add_argument("--patients", type=int, default=10, help="100 instances per patient")
    ap.add_argument("--quick", action="store_true", help="1 patient = 100 instances, 512x512 only")
    ap.add_argument(
        "--sizes", help="comma-separated image sizes, square (default 512,64; --quick: 512)"
    )
    ap.add_argument(
        "--pairs", default="dd,do,oo,od", help="source-target pairs: dd, do, oo, od (d: dicomd)"
    )
    ap.add_argument("--modes", default="sync,async", help="sync, async or both")
    ap.add_argument("--concurrent-jobs", type=int, default=2, help="ConcurrentJobs of both sources")
    ap.add_argument("--repeat", type=int, default=1, help="forwards per cell; median shown")
    ap.add_argument(
        "--time-limit", type=float, default=1800, help="bound on the whole run, in seconds"
    )
    ap.add_argument("--start-timeout", type=float, default=60, help="seconds for a server start")
    ap.add_argument("--json-out", type=Path, help="raw results (default: WORKDIR/results/)")
    ap.add_argument(
        "--dicomd-cmd",
        default=f"{shlex.quote(sys.executable)} -m dicomd",
        help="command that runs dicomd ('serve --config FILE' is appended)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the servers' storage folders")
    args = ap.parse_args(argv)
    if args.quick:
        args.patients = 1
    if args.sizes is None:
        args.sizes = "512" if args.quick else "512,64"
    try:
        args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error("--sizes takes a comma-separated list of integers")
    codes = [c.strip() for c in args.pairs.split(",") if c.strip()]
    if not codes or any(c not in PAIR_CODES for c in codes):
        ap.error("--pairs takes dd, do, oo and od")
    args.pair_list = [p for p in PAIRS if p in {PAIR_CODES[c] for c in codes}]
    args.mode_list = [m for m in MODES if m in args.modes.split(",")]
    if not args.mode_list:
        ap.error("--modes takes sync, async or both")
    if not args.size_list or min(args.size_list) < 8:
        ap.error("--sizes needs sizes of 8 pixels or more")
    if args.repeat < 1 or args.patients < 1 or args.concurrent_jobs < 1:
        ap.error("--repeat, --patients and --concurrent-jobs must be at least 1")
    args.shared = args.shared.resolve()
    args.workdir = args.workdir.resolve()
    return args


@dataclass
class Workload:
    size: int
    folder: Path
    files: int
    bytes: int

    @property
    def label(self) -> str:
        return f"{self.size}x{self.size}"


def ensure_workload(args: argparse.Namespace, gen: Path, size: int) -> Workload:
    """Generate a workload once (named as benchmarks/ingest.py names it, so the two share
    the 512x512 one); return it."""
    gen_hash = hashlib.sha256(gen.read_bytes()).hexdigest()[:10]
    shape = f"{args.patients}p{STUDIES}st{SERIES}se{PER_SERIES}i"
    name = f"ct-{shape}-{size}x{size}-s{SEED}-{gen_hash}"
    data = args.workdir / "data" / name
    expected = args.patients * STUDIES * SERIES * PER_SERIES
    marker = data / "workload.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("files") == expected == len(list(data.rglob("*.dcm"))):
            log(f"workload {size}x{size}: {expected} instances cached in {data}")
            return Workload(size, data, int(info["files"]), int(info["bytes"]))
        shutil.rmtree(data, ignore_errors=True)
    data.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=name + ".tmp-", dir=data.parent))
    log(f"workload {size}x{size}: generating {expected} instances ...")
    cmd = [sys.executable, str(gen), "--out", str(tmp), "--patients", str(args.patients)]
    cmd += ["--studies", str(STUDIES), "--series", str(SERIES)]
    cmd += ["--instances-per-series", str(PER_SERIES), "--rows", str(size), "--cols", str(size)]
    cmd += ["--seed", str(SEED)]
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=3600)
        files = sorted(tmp.rglob("*.dcm"))
        info = {"files": len(files), "bytes": sum(f.stat().st_size for f in files), "cmd": cmd}
        (tmp / "workload.json").write_text(json.dumps(info, indent=2))
        try:
            tmp.rename(data)
        except OSError:  # another benchmark finished the same workload first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"workload {size}x{size}: {info['files']} instances, {info['bytes'] / 1e6:.1f} MB")
    return Workload(size, data, int(info["files"]), int(info["bytes"]))


# --------------------------------------------------------------------------- servers


def usage(pid: int | None) -> dict[str, float]:
    """CPU seconds (user + system) and bytes written to storage by a process and its
    descendants so far, from /proc."""
    cpu, written = 0.0, 0
    if pid is None:
        return {"cpu_s": 0.0, "write_bytes": 0}
    tick = os.sysconf("SC_CLK_TCK")
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / tick
            for line in Path(f"/proc/{p}/io").read_text().splitlines():
                if line.startswith("write_bytes:"):
                    written += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return {"cpu_s": cpu, "write_bytes": written}


class Server:
    """What the benchmark needs of dicomd and of Orthanc alike."""

    kind: str
    url: str
    folder: Path
    storage: Path
    index: Path

    @property
    def pid(self) -> int | None:
        raise NotImplementedError

    def start(self, timeout: float) -> float:
        raise NotImplementedError

    def stop(self) -> int | None:
        raise NotImplementedError

    def log_tail(self, n: int = 40) -> str:
        raise NotImplementedError

    def get(self, path: str, timeout: float = 60) -> Any:
        r = requests.get(self.url + path, timeout=timeout)
        r.raise_for_status()
        return r.json()

    def count(self) -> int:
        return int(self.get("/statistics")["CountInstances"])

    def version(self) -> str | None:
        system = self.get("/system")
        return system.get("DicomdVersion") or system.get("Version")

    def set_peer(self, url: str) -> None:
        """Point the peer ``target`` at this URL (both servers take Orthanc's object form)."""
        r = requests.put(f"{self.url}/peers/{PEER}", json={"Url": url + "/"}, timeout=30)
        if r.status_code != 200:
            raise RunError(f"PUT /peers/{PEER} answered {r.status_code}: {r.text[:200]}")

    def remove_storage(self) -> None:
        shutil.rmtree(self.storage, ignore_errors=True)
        shutil.rmtree(self.index, ignore_errors=True)


class DicomdServer(benchlib.DicomdServer, Server):
    kind = "dicomd"


class OrthancServer(benchlib.OrthancServer, Server):
    kind = "orthanc"


# --------------------------------------------------------------------------- runs


@dataclass
class Context:
    """What every run needs: options, shared tools, the time bound."""

    args: argparse.Namespace
    ctl: ModuleType
    bench: Path
    session: Path
    deadline: float
    dicomd_cmd: list[str]

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def server(self, kind: str, folder: Path) -> Server:
        if kind == "dicomd":
            jobs = {"ConcurrentJobs": self.args.concurrent_jobs}
            return DicomdServer(self.dicomd_cmd, folder, {**COMMON_CONFIG, **jobs})
        jobs = {"ConcurrentJobs": self.args.concurrent_jobs}
        return OrthancServer(self.ctl, folder, False, {**COMMON_CONFIG, **jobs})


@dataclass
class Source:
    """A running source server loaded with a workload."""

    server: Server
    instances: set[str]
    patients: list[str]
    studies: list[str]
    load: dict[str, Any]


@dataclass
class Cell:
    """One forward: a workload, a mode, a source-target pair, a repetition."""

    workload: Workload
    mode: str
    pair: tuple[str, str]
    rep: int
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        src, dst = self.pair
        return f"{self.workload.label}-{self.mode}-{src}-to-{dst}-r{self.rep + 1}"


def load_source(kind: str, workload: Workload, ctx: Context) -> Source:
    """Start a source server with empty storage and upload the workload (1 client)."""
    folder = ctx.session / f"source-{kind}-{workload.label}"
    server = ctx.server(kind, folder)
    server.start(ctx.args.start_timeout)
    bench_json = folder / "load.json"
    cmd = [sys.executable, str(ctx.bench), "--url", server.url, "--dir", str(workload.folder)]
    cmd += ["--clients", "1", "--label", f"load-{kind}", "--json-out", str(bench_json)]
    with open(folder / "load.log", "wb") as blog:
        subprocess.run(cmd, stdout=blog, stderr=subprocess.STDOUT, timeout=max(ctx.remaining(), 1))
    if not bench_json.exists():
        raise RunError("bench_ingest wrote no result:\n" + read_tail(folder / "load.log", 20))
    load = json.loads(bench_json.read_text())
    if load.get("uploaded_ok") != workload.files or load.get("verify_bytes_mismatch"):
        raise RunError(f"loading the source failed: {json.dumps(load)[:500]}")
    instances = set(server.get("/instances"))
    patients = sorted(server.get("/patients"))
    studies = sorted(server.get("/studies"))
    if len(instances) != workload.files:
        raise RunError(f"the source holds {len(instances)} instances, not {workload.files}")
    return Source(server, instances, patients, studies, load)


def forward_sync(source: Source, timeout: float) -> dict[str, Any]:
    """Every patient in one synchronous call: one job."""
    body = {"Resources": source.patients, "Synchronous": True}
    t0 = time.perf_counter()
    r = requests.post(f"{source.server.url}/peers/{PEER}/store", json=body, timeout=timeout)
    seconds = time.perf_counter() - t0
    if r.status_code != 200:
        raise RunError(f"store answered {r.status_code}: {r.text[:300]}")
    answer = r.json()
    return {"seconds": seconds, "answer": answer, "jobs": 1}


def forward_async(source: Source, timeout: float) -> dict[str, Any]:
    """One asynchronous job per study, all submitted at once; done when the last succeeded.
    Jobs are polled oldest first, one request at a time, so polling stays light."""
    url = source.server.url
    session = requests.Session()
    t0 = time.perf_counter()
    paths = []
    for study in source.studies:
        body = {"Resources": [study], "Asynchronous": True}
        r = session.post(f"{url}/peers/{PEER}/store", json=body, timeout=60)
        if r.status_code != 200:
            raise RunError(f"store answered {r.status_code}: {r.text[:300]}")
        paths.append(r.json()["Path"])
    submitted = time.perf_counter() - t0
    pending = list(paths)
    states: dict[str, str] = {}
    while pending:
        if time.perf_counter() - t0 > timeout:
            raise RunError(f"{len(pending)} job(s) not done after {timeout:.0f} s")
        job = session.get(url + pending[0], timeout=60).json()
        if job["State"] in ("Success", "Failure"):
            states[pending.pop(0)] = job["State"]
            continue
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    failed = [p for p, s in states.items() if s != "Success"]
    if failed:
        detail = session.get(url + failed[0], timeout=60).json()
        raise RunError(f"{len(failed)} job(s) failed, e.g. {json.dumps(detail)[:400]}")
    return {"seconds": seconds, "jobs": len(paths), "submit_s": submitted}


def verify_target(source: Source, target: Server, workload: Workload) -> list[str]:
    """The target holds exactly the source's instances, byte for byte (sampled)."""
    problems = []
    count = target.count()
    if count != workload.files:
        problems.append(f"target /statistics counts {count} instances, not {workload.files}")
    ids = set(target.get("/instances"))
    if ids != source.instances:
        problems.append(
            f"target instances differ: {len(source.instances - ids)} missing, "
            f"{len(ids - source.instances)} unexpected"
        )
    for instance in sorted(source.instances)[:SAMPLED_FILES]:
        a = requests.get(f"{source.server.url}/instances/{instance}/file", timeout=60)
        b = requests.get(f"{target.url}/instances/{instance}/file", timeout=60)
        if a.status_code != 200 or a.content != b.content:
            problems.append(f"instance {instance} differs on the target")
    return problems


def run_cell(cell: Cell, source: Source, ctx: Context) -> None:
    """Start a fresh target, forward the whole source to it, verify, stop it."""
    res = cell.result
    src, dst = cell.pair
    res.update(workload=cell.workload.label, mode=cell.mode, source=src, target=dst)
    res.update(rep=cell.rep, ok=False, problems=[])
    folder = ctx.session / cell.label
    target = ctx.server(dst, folder)
    started = time.monotonic()
    try:
        res["target_startup_s"] = target.start(min(ctx.args.start_timeout, ctx.remaining()))
        res["target_version"] = target.version()
        source.server.set_peer(target.url)
        timeout = max(ctx.remaining(), 5)
        before = {"source": usage(source.server.pid), "target": usage(target.pid)}
        if cell.mode == "sync":
            res.update(forward_sync(source, timeout))
        else:
            res.update(forward_async(source, timeout))
        after = {"source": usage(source.server.pid), "target": usage(target.pid)}
        n = cell.workload.files
        for side in ("source", "target"):
            res[f"{side}_cpu_ms_per_instance"] = (
                1000 * (after[side]["cpu_s"] - before[side]["cpu_s"]) / n
            )
            res[f"{side}_written_kb_per_instance"] = (
                (after[side]["write_bytes"] - before[side]["write_bytes"]) / 1000 / n
            )
        res["instances_per_s"] = n / res["seconds"]
        res["MB_per_s"] = cell.workload.bytes / 1e6 / res["seconds"]
        answer = res.get("answer")
        if answer is not None and (
            int(answer.get("InstancesCount", -1)) != n
            or int(answer.get("FailedInstancesCount", -1)) != 0
        ):
            res["problems"].append(f"the store answered {answer}")
        res["problems"] += verify_target(source, target, cell.workload)
    except RunError as exc:
        res["problems"].append(str(exc))
        log(f"  {cell.label}: FAILED: {exc}")
    except (requests.RequestException, KeyError, ValueError) as exc:
        res["problems"].append(f"{type(exc).__name__}: {exc}")
        log(f"  {cell.label}: FAILED: {exc!r}")
    finally:
        res["target_stop_rc"] = target.stop()
        if not ctx.args.keep:
            target.remove_storage()
    res["cell_s"] = time.monotonic() - started
    if res.get("target_stop_rc") not in (0, None):
        res["problems"].append(f"target exit code {res['target_stop_rc']} after SIGTERM")
    res["ok"] = not res["problems"]


def plan(args: argparse.Namespace, workload: Workload) -> list[Cell]:
    """Run order: mode, repetition, then the pairs back to back, so drift hits all alike."""
    return [
        Cell(workload, mode, pair, rep)
        for mode in args.mode_list
        for rep in range(args.repeat)
        for pair in args.pair_list
    ]


def run_workload(workload: Workload, ctx: Context) -> tuple[list[Cell], dict[str, Any]]:
    """Load both sources, run every cell of this workload, stop the sources."""
    cells = plan(ctx.args, workload)
    kinds = sorted({src for src, _dst in ctx.args.pair_list}, key=SERVERS.index)
    sources: dict[str, Source] = {}
    loads: dict[str, Any] = {}
    try:
        for kind in kinds:
            log(f"[{workload.label}] loading the source {TITLE[kind]} ...")
            try:
                sources[kind] = load_source(kind, workload, ctx)
            except (RunError, requests.RequestException, subprocess.TimeoutExpired) as exc:
                log(f"  source {TITLE[kind]} failed: {exc}")
                loads[kind] = {"error": str(exc)}
                continue
            load = sources[kind].load
            loads[kind] = {
                "instances_per_s": load["instances_per_s"],
                "MB_per_s": load["MB_per_s"],
                "version": sources[kind].server.version(),
            }
            log(f"  {load['instances_per_s']:.1f} inst/s over 1 connection")
        for i, cell in enumerate(cells, 1):
            source = sources.get(cell.pair[0])
            if source is None or ctx.remaining() < 10:
                why = "time limit" if source else "its source failed to load"
                cell.result.update(ok=False, problems=["skipped", why], skipped=True)
                continue
            log(f"[{workload.label} {i}/{len(cells)}] {cell.label} ...")
            run_cell(cell, source, ctx)
            res = cell.result
            if "instances_per_s" in res:
                log(
                    f"  {res['instances_per_s']:.1f} inst/s, {res['MB_per_s']:.1f} MB/s, "
                    f"CPU ms/inst source {res['source_cpu_ms_per_instance']:.1f} "
                    f"target {res['target_cpu_ms_per_instance']:.1f}, "
                    f"{res['cell_s']:.0f} s in all, "
                    f"{'ok' if res['ok'] else 'PROBLEMS: ' + '; '.join(res['problems'])}"
                )
    finally:
        for source in sources.values():
            rc = source.server.stop()
            if rc not in (0, None):
                log(f"  source {source.server.kind} exit code {rc} after SIGTERM")
            if not ctx.args.keep:
                source.server.remove_storage()
    return cells, loads


# --------------------------------------------------------------------------- report


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(cells: list[Cell]) -> list[dict[str, Any]]:
    """Medians per (workload, mode, pair), with the rate relative to Orthanc -> Orthanc."""
    rows: list[dict[str, Any]] = []
    keys: list[tuple[str, str, tuple[str, str]]] = []
    for c in cells:
        key = (c.workload.label, c.mode, c.pair)
        if key not in keys:
            keys.append(key)
    for key in keys:
        mine = [c.result for c in cells if (c.workload.label, c.mode, c.pair) == key]
        good = [r for r in mine if r.get("ok")]
        row: dict[str, Any] = {"workload": key[0], "mode": key[1], "pair": list(key[2])}
        row["runs"] = len(mine)
        row["failed"] = sum(not r.get("ok") and not r.get("skipped") for r in mine)
        row["skipped"] = sum(bool(r.get("skipped")) for r in mine)
        for name in (
            "seconds",
            "instances_per_s",
            "MB_per_s",
            "source_cpu_ms_per_instance",
            "target_cpu_ms_per_instance",
            "source_written_kb_per_instance",
        ):
            row[name] = median([r[name] for r in good])
        row["all_instances_per_s"] = [r["instances_per_s"] for r in good]
        rows.append(row)
    for row in rows:
        ref = next(
            (
                r
                for r in rows
                if (r["workload"], r["mode"], tuple(r["pair"]))
                == (row["workload"], row["mode"], REFERENCE)
            ),
            None,
        )
        rate, ref_rate = row["instances_per_s"], ref and ref["instances_per_s"]
        row["vs_orthanc"] = rate / ref_rate if rate is not None and ref_rate else None
    return rows


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(meta: dict[str, Any], rows: list[dict[str, Any]], loads: dict[str, Any]) -> str:
    """The Markdown report."""
    versions = meta["versions"]
    out = [
        f"## Forwarding to peers ({meta['date']})",
        "",
        f"{meta['cpus']} CPUs; dicomd {versions.get('dicomd', 'n/a')}, Orthanc "
        f"{versions.get('orthanc', 'n/a')}; workloads: "
        + "; ".join(
            f"{w['files']} CT instances {w['label']} 16-bit, {w['bytes'] / 1e6:.1f} MB"
            for w in meta["workloads"]
        )
        + f". sync: every patient in one synchronous `POST /peers/{{name}}/store` (one job); "
        f"async: one asynchronous job per study, all at once, `ConcurrentJobs` "
        f"{meta['concurrent_jobs']}. Fresh target per forward; median of {meta['repeat']} "
        f"forward(s) per cell; {meta['duration_s']:.0f} s in all.",
        "",
        "| workload | mode | source → target | seconds | inst/s | MB/s "
        "| vs Orthanc → Orthanc | source CPU ms/inst | target CPU ms/inst "
        "| source disk writes kB/inst | checks |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        src, dst = row["pair"]
        checks = "ok"
        if row["failed"] or row["skipped"]:
            checks = f"{row['failed']} FAILED, {row['skipped']} skipped of {row['runs']}"
        out.append(
            f"| {row['workload']} | {row['mode']} | {TITLE[src]} → {TITLE[dst]} "
            f"| {fmt(row['seconds'])} | {fmt(row['instances_per_s'])} | {fmt(row['MB_per_s'])} "
            f"| {fmt(row['vs_orthanc'], 2)} | {fmt(row['source_cpu_ms_per_instance'])} "
            f"| {fmt(row['target_cpu_ms_per_instance'])} "
            f"| {fmt(row['source_written_kb_per_instance'])} | {checks} |"
        )
    out += [
        "",
        "For reference, each source's own ingest over one connection while it was loaded "
        "(`POST /instances` by `bench_ingest.py`, 1 client, a fresh server: warm-up included):",
        "",
    ]
    for label, per_server in loads.items():
        shown = ", ".join(
            f"{TITLE[k]} {fmt(v.get('instances_per_s'))} inst/s"
            if "error" not in v
            else f"{TITLE[k]} failed"
            for k, v in per_server.items()
        )
        out.append(f"- {label}: {shown}")
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def preflight(args: argparse.Namespace, tools: dict[str, Path]) -> str | None:
    """Why the benchmark cannot run here, or None. Re-executes in a namespace first."""
    missing = [str(p) for p in tools.values() if not p.exists()]
    if missing:
        return f"shared tools not found: {', '.join(missing)} (use --shared DIR)"
    if os.environ.get(NETNS_MARK) != "1":
        reexec_in_netns(tools["in_netns.sh"])
    if not loopback_only():
        return (
            "not in a loopback-only network namespace (ANCHOR_NO_NETNS set, or unshare "
            "failed): refusing to start Orthanc, which binds every interface"
        )
    why = check_dicomd(shlex.split(args.dicomd_cmd))
    if why:
        return f"dicomd cannot run: {why}. Install the project (pip install -e .)."
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench_dir = args.shared / "bench"
    names = ("gen_dicom.py", "bench_ingest.py", "orthanc_ctl.py", "in_netns.sh")
    tools = {n: bench_dir / n for n in names}
    why = preflight(args, tools)
    if why:
        log(why)
        return 2
    # Every exit path, SIGTERM included, goes through the finally blocks that stop servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    ctl = load_orthanc_ctl(bench_dir)
    workloads = [ensure_workload(args, tools["gen_dicom.py"], size) for size in args.size_list]
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    ctx = Context(
        args=args,
        ctl=ctl,
        bench=tools["bench_ingest.py"],
        session=args.workdir / "runs" / f"forward-{stamp}-{os.getpid()}",
        deadline=started + args.time_limit,
        dicomd_cmd=shlex.split(args.dicomd_cmd),
    )
    cells: list[Cell] = []
    loads: dict[str, Any] = {}
    for workload in workloads:
        mine, loads[workload.label] = run_workload(workload, ctx)
        cells += mine

    rows = summarise(cells)
    versions: dict[str, str] = {}
    for per_server in loads.values():
        for kind, load in per_server.items():
            if load.get("version"):
                versions[kind] = load["version"]
    meta = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "duration_s": time.monotonic() - started,
        "workloads": [
            {"label": w.label, "files": w.files, "bytes": w.bytes, "folder": str(w.folder)}
            for w in workloads
        ],
        "repeat": args.repeat,
        "concurrent_jobs": args.concurrent_jobs,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "platform": platform.platform(),
        "python": sys.version,
        "versions": versions,
        "argv": sys.argv,
        "shared": str(args.shared),
    }
    report = render(meta, rows, loads)
    print(report)
    out = args.json_out or args.workdir / "results" / f"forward-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = [c.result for c in cells]
    results = {"meta": meta, "summary": rows, "loads": loads, "runs": runs, "report": report}
    out.write_text(json.dumps(results, indent=2, default=str))
    log(f"raw results: {out}\nserver logs: {ctx.session}")
    return 1 if any(not c.result.get("ok") for c in cells) else 0


if __name__ == "__main__":
    sys.exit(main())
