"""Ingest benchmark: dicomd against Orthanc 1.10, same workload, same machine, same run.

Usage, from the project root (needs root, for a private network namespace)::

    python benchmarks/ingest.py                  # full run: 1000 CT instances, 8 server runs
    python benchmarks/ingest.py --quick          # 100 instances, for development
    python benchmarks/ingest.py --only orthanc   # one server only (no targets checked)
    python benchmarks/ingest.py --repeat 3       # median of 3 runs per cell

What it does:

1. Generates once, with ``shared/bench/gen_dicom.py``, a deterministic CT workload (by default
   10 patients x 2 studies x 2 series x 25 instances = 1000 files of 512x512 16-bit, 525.6 MB)
   and caches it under ``--workdir`` (default: ``<system temp>/dicomd-bench``).
2. For each compression setting (off, on), each client count (1, 4) and each server (dicomd,
   Orthanc), starts a fresh server with empty storage on a free loopback port, uploads the
   whole workload with ``shared/bench/bench_ingest.py`` (``POST /instances``; then it checks
   counts, byte-identical downloads and Orthanc IDs), measures the storage folder (apparent
   size), ``/statistics`` ``TotalDiskSize`` and the server's CPU time (all its processes),
   and stops the server with SIGTERM. The two servers run back to back, the first of each
   pair alternating from one repetition to the next. The runs' storage folders are deleted
   at the end, not between runs, when the disk has room (see ``delete_between_runs``).
3. Prints a Markdown table (medians over ``--repeat`` runs) and the targets with PASS/FAIL, and
   writes every raw result to a JSON file (``--json-out``, default under the work folder).

Orthanc 1.10 binds every interface, so the script re-executes itself through
``shared/bench/in_netns.sh``: Orthanc, dicomd and the clients all run in a network namespace
that has only loopback. dicomd is started as ``python -m dicomd serve --config FILE`` with
``daemon/`` on ``PYTHONPATH`` (``--dicomd-cmd`` overrides the command).

Exit status: 0 when every run verified and every target that could be checked passed, 1 when a
target failed or a run had errors, 2 when the benchmark could not run at all.
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

from benchlib import (
    NETNS_MARK,
    PROJECT_ROOT,
    DicomdServer,
    OrthancServer,
    RunError,
    check_dicomd,
    load_orthanc_ctl,
    log,
    loopback_only,
    read_tail,
    reexec_in_netns,
    tree_cpu_seconds,
)

SERVERS = ("dicomd", "orthanc")
SERVER_TITLE = {"dicomd": "dicomd", "orthanc": "Orthanc"}
SKIPPED = "skipped"
# Workload shape per patient: 2 studies x 2 series x 25 instances = 100 instances.
STUDIES, SERIES, PER_SERIES, ROWS, COLS, SEED = 2, 2, 25, 512, 512, 1
# Targets: dicomd/Orthanc instances/s at the highest client count, and stored size.
TARGET_PLAIN_RATIO = 1.0
TARGET_COMPRESSED_RATIO = 5.0
TARGET_SIZE_RATIO = 1.05
# Keys shared by both servers' configurations, so that both run with the same settings
# (orthanc_ctl writes the same values for Orthanc).
COMMON_CONFIG: dict[str, Any] = {
    "MaximumStorageSize": 0,
    "MaximumPatientCount": 0,
    "RemoteAccessAllowed": False,
    "AuthenticationEnabled": False,
    "DicomServerEnabled": False,
    "StableAge": 2,
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
        help="cache for the workload, server folders, logs and results",
    )
    ap.add_argument("--patients", type=int, default=10, help="100 instances per patient")
    ap.add_argument("--quick", action="store_true", help="1 patient = 100 instances")
    ap.add_argument("--only", choices=SERVERS, help="run one server only")
    ap.add_argument("--compression", choices=("off", "on", "both"), default="both")
    ap.add_argument("--clients", default="1,4", help="comma-separated client counts")
    ap.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is shown")
    ap.add_argument(
        "--time-limit", type=float, default=3600, help="bound on the whole run, in seconds"
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
    try:
        args.client_counts = sorted({int(c) for c in args.clients.split(",") if c.strip()})
    except ValueError:
        ap.error("--clients takes a comma-separated list of integers")
    if not args.client_counts or min(args.client_counts) < 1:
        ap.error("--clients needs positive integers")
    if args.repeat < 1 or args.patients < 1:
        ap.error("--repeat and --patients must be at least 1")
    args.shared = args.shared.resolve()
    args.workdir = args.workdir.resolve()
    return args


def ensure_workload(args: argparse.Namespace, gen: Path) -> tuple[Path, int, int]:
    """Generate the workload once; return (folder, file count, total bytes)."""
    gen_hash = hashlib.sha256(gen.read_bytes()).hexdigest()[:10]
    name = f"ct-{args.patients}p{STUDIES}st{SERIES}se{PER_SERIES}i-{ROWS}x{COLS}-s{SEED}-{gen_hash}"
    data = args.workdir / "data" / name
    expected = args.patients * STUDIES * SERIES * PER_SERIES
    marker = data / "workload.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("files") == expected == len(list(data.rglob("*.dcm"))):
            log(f"workload: {expected} instances cached in {data}")
            return data, info["files"], info["bytes"]
        shutil.rmtree(data, ignore_errors=True)
    data.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=name + ".tmp-", dir=data.parent))
    log(f"workload: generating {expected} instances (about {expected * 0.06:.0f} s) ...")
    cmd = [sys.executable, str(gen), "--out", str(tmp), "--patients", str(args.patients)]
    cmd += ["--studies", str(STUDIES), "--series", str(SERIES)]
    cmd += ["--instances-per-series", str(PER_SERIES), "--rows", str(ROWS), "--cols", str(COLS)]
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
    log(f"workload: {info['files']} instances, {info['bytes'] / 1e6:.1f} MB in {data}")
    return data, int(info["files"]), int(info["bytes"])


# --------------------------------------------------------------------------- servers


Server = DicomdServer | OrthancServer


# --------------------------------------------------------------------------- runs


@dataclass
class Cell:
    """One measurement: a server, a compression setting, a client count, a repetition."""

    server: str
    compression: bool
    clients: int
    rep: int
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        comp = "on" if self.compression else "off"
        return f"{self.server}-comp{comp}-c{self.clients}-r{self.rep + 1}"


@dataclass
class Context:
    """What every run needs: options, shared tools, the workload and the time bound."""

    args: argparse.Namespace
    ctl: ModuleType
    bench: Path
    data: Path
    files: int
    session: Path
    deadline: float
    dicomd_cmd: list[str]
    # Storage folders of finished runs not deleted yet: at the end, or as soon as a run
    # ends when the disk is short (see delete_between_runs).
    deferred: list[Path] = field(default_factory=list)
    delete_at_once: bool = True

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def bench_problems(bench: dict[str, Any], expected: int) -> list[str]:
    """Problems found in bench_ingest's JSON (empty when the run fully verified)."""
    problems = []
    if bench.get("errors"):
        problems.append(f"{bench['errors']} upload errors, e.g. {bench.get('error_samples')}")
    if bench.get("uploaded_ok") != expected:
        problems.append(f"uploaded {bench.get('uploaded_ok')} of {expected}")
    if bench.get("status_counts", {}).get("Success") != expected:
        problems.append(f"status counts {bench.get('status_counts')}")
    if not bench.get("verify_count_ok"):
        problems.append("/statistics CountInstances did not grow by the uploads")
    if bench.get("verify_bytes_mismatch"):
        problems.append(f"{bench['verify_bytes_mismatch']} downloads differ from the uploads")
    if bench.get("id_mismatch"):
        problems.append(f"{bench['id_mismatch']} IDs differ from Orthanc's")
    return problems


def run_cell(cell: Cell, ctx: Context) -> None:
    """Start a fresh server, upload the workload, stop it, measure; fill cell.result."""
    folder = ctx.session / cell.label
    res = cell.result
    res.update(server=cell.server, compression=cell.compression, clients=cell.clients)
    res.update(rep=cell.rep, ok=False, problems=[], folder=str(folder))
    server: Server
    if cell.server == "dicomd":
        server = DicomdServer(
            ctx.dicomd_cmd, folder, {"StorageCompression": cell.compression, **COMMON_CONFIG}
        )
    else:
        server = OrthancServer(ctx.ctl, folder, cell.compression, COMMON_CONFIG)
    res["url"] = server.url
    try:
        upload(server, cell, ctx, folder)
    except RunError as exc:
        res["problems"].append(f"{SERVER_TITLE[cell.server]}: {exc}")
        log(f"  {cell.label}: FAILED: {exc}")
    except subprocess.TimeoutExpired:
        res["problems"].append("time limit reached during the upload")
        log(f"  {cell.label}: stopped by --time-limit")
    except (requests.RequestException, KeyError, ValueError) as exc:
        res["problems"].append(f"{type(exc).__name__}: {exc}")
        log(f"  {cell.label}: FAILED: {exc!r}")
    finally:
        res["stop_rc"] = server.stop()
        # Measured once stopped, so that anything the server writes late is counted.
        apparent, allocated = ctx.ctl.du_bytes(str(server.storage))
        res["storage_apparent"], res["storage_allocated"] = apparent, allocated
        res["index_apparent"] = ctx.ctl.du_bytes(str(server.index))[0]
        if not ctx.args.keep:
            ctx.deferred += [server.storage, server.index]
            if ctx.delete_at_once:
                delete_deferred(ctx)
    if "startup_s" in res and res["stop_rc"] != 0:
        res["problems"].append(f"server exit code {res['stop_rc']} after SIGTERM")
    res["ok"] = not res["problems"]
    if res["problems"] and "bench" in res:
        log(f"  {cell.label}: problems: {res['problems']}")


def upload(server: Server, cell: Cell, ctx: Context, folder: Path) -> None:
    """Start the server and run bench_ingest against it; results go to cell.result."""
    res = cell.result
    res["startup_s"] = server.start(min(ctx.args.start_timeout, max(ctx.remaining(), 1)))
    system = requests.get(server.url + "/system", timeout=10).json()
    res["version"] = system.get("DicomdVersion") or system.get("Version")
    bench_json = folder / "bench.json"
    cmd = [sys.executable, str(ctx.bench), "--url", server.url, "--dir", str(ctx.data)]
    cmd += ["--clients", str(cell.clients), "--label", cell.label, "--json-out", str(bench_json)]
    cpu_before = tree_cpu_seconds(server.pid)
    with open(folder / "bench.log", "wb") as blog:
        proc = subprocess.run(
            cmd, stdout=blog, stderr=subprocess.STDOUT, timeout=max(ctx.remaining(), 1)
        )
    cpu_after = tree_cpu_seconds(server.pid)
    # The server's CPU during bench_ingest (the upload, and its few checking requests).
    res["server_user_s"] = cpu_after[0] - cpu_before[0]
    res["server_system_s"] = cpu_after[1] - cpu_before[1]
    res["bench_rc"] = proc.returncode
    if not bench_json.exists():
        raise RunError("bench_ingest wrote no result:\n" + read_tail(folder / "bench.log", 20))
    bench = json.loads(bench_json.read_text())
    res["bench"] = bench
    res["total_disk_size"] = int(bench["stats_after"]["TotalDiskSize"])
    res["total_uncompressed_size"] = int(bench["stats_after"]["TotalUncompressedSize"])
    res["peak_rss"] = ctx.ctl.proc_mem(server.pid).get("VmHWM") if server.pid else None
    res["problems"] = bench_problems(bench, ctx.files)


def delete_between_runs(ctx: Context, cells: list[Cell], workload_bytes: int) -> bool:
    """Whether each run's storage must be deleted as soon as it ends, for lack of disk space.

    Otherwise they are all deleted at the end. On ext4 without a journal (this project's
    CI machines), the inode allocator skips every inode freed in the last 1 to 5 minutes,
    one by one: a run that follows the deletion of another run's 1000 files and 1000
    folders paid up to 2 ms of kernel time more per stored file, growing from run to run,
    so the server that happened to run later in a pair looked slower (measured: system
    time per 1000 instances from 0.5 s in the first run to 2.7 s in the twelfth)."""
    room = shutil.disk_usage(ctx.session).free
    needed = int(workload_bytes * 1.1) * len(cells) + 2 * 1024**3  # and 2 GiB to spare
    if room >= needed:
        return False
    log(
        f"note: {needed / 1e9:.1f} GB needed to keep every run's storage until the end, "
        f"{room / 1e9:.1f} GB free: deleting each run's storage as it ends"
    )
    return True


def delete_deferred(ctx: Context) -> None:
    while ctx.deferred:
        shutil.rmtree(ctx.deferred.pop(), ignore_errors=True)


def plan(args: argparse.Namespace, servers: list[str]) -> list[Cell]:
    """Run order: the two servers back to back for each setting, so drift hits both alike,
    and which one goes first alternates from one repetition to the next: a run pays for
    what the run before it left behind (page cache to reclaim, inodes just freed)."""
    comps = {"off": [False], "on": [True], "both": [False, True]}[args.compression]
    return [
        Cell(server, comp, clients, rep)
        for comp in comps
        for rep in range(args.repeat)
        for clients in args.client_counts
        for server in (servers if rep % 2 == 0 else servers[::-1])
    ]


# --------------------------------------------------------------------------- report


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(cells: list[Cell]) -> list[dict[str, Any]]:
    """Medians per (compression, clients, server), with ratios dicomd/Orthanc."""
    rows: list[dict[str, Any]] = []
    keys = sorted({(c.compression, c.clients) for c in cells})
    for comp, clients in keys:
        row: dict[str, Any] = {"compression": comp, "clients": clients}
        for server in SERVERS:
            mine = [
                c.result
                for c in cells
                if (c.compression, c.clients, c.server) == (comp, clients, server)
            ]
            if not mine:
                continue
            good = [r for r in mine if "bench" in r and r["bench"].get("uploaded_ok")]
            row[server] = {
                "runs": len(mine),
                "all_ok": all(r["ok"] for r in mine),
                "failed": sum(not r["ok"] and r["problems"][:1] != [SKIPPED] for r in mine),
                "instances_per_s": median([r["bench"]["instances_per_s"] for r in good]),
                "MB_per_s": median([r["bench"]["MB_per_s"] for r in good]),
                "stored_bytes": median([r["storage_apparent"] for r in good]),
                "total_disk_size": median([r["total_disk_size"] for r in good]),
                "all_inst_per_s": [r["bench"]["instances_per_s"] for r in good],
                "cpu_ms_per_instance": median(
                    [
                        1000 * (r["server_user_s"] + r["server_system_s"]) / ok
                        for r in good
                        if (ok := r["bench"]["uploaded_ok"]) and "server_user_s" in r
                    ]
                ),
            }
        row["speed_ratio"] = ratio(row, "instances_per_s")
        row["size_ratio"] = ratio(row, "stored_bytes")
        rows.append(row)
    return rows


def ratio(row: dict[str, Any], key: str) -> float | None:
    a = row.get("dicomd", {}).get(key)
    b = row.get("orthanc", {}).get(key)
    return a / b if a is not None and b else None


def check_targets(rows: list[dict[str, Any]], cells: list[Cell]) -> list[dict[str, Any]]:
    """The targets, each PASS, FAIL or n/a (when a run it needs was not made)."""

    def highest_clients(comp: bool) -> dict[str, Any] | None:
        mine = [r for r in rows if r["compression"] == comp]
        return max(mine, key=lambda r: r["clients"]) if mine else None

    def verdict(value: float | None, ok: bool) -> str:
        return "n/a" if value is None else ("PASS" if ok else "FAIL")

    targets = []
    plain, comp = highest_clients(False), highest_clients(True)
    for row, thr, what in (
        (plain, TARGET_PLAIN_RATIO, "off"),
        (comp, TARGET_COMPRESSED_RATIO, "on"),
    ):
        value = row["speed_ratio"] if row else None
        at = f"{row['clients']} client(s)" if row else "most clients"
        targets.append(
            {
                "name": f"compression {what}, {at}: dicomd/Orthanc inst/s >= {thr:g}",
                "value": value,
                "status": verdict(value, value is not None and value >= thr),
            }
        )
    value = comp["size_ratio"] if comp else None
    targets.append(
        {
            "name": f"compression on: dicomd stored size <= {TARGET_SIZE_RATIO:g} x Orthanc's",
            "value": value,
            "status": verdict(value, value is not None and value <= TARGET_SIZE_RATIO),
        }
    )
    bad = [c.label for c in cells if not c.result.get("ok")]
    targets.append(
        {
            "name": "every run uploaded, verified (count, bytes, IDs) and stopped cleanly",
            "value": f"{len(cells) - len(bad)} of {len(cells)} runs",
            "status": "FAIL" if bad else "PASS",
            "failed_runs": bad,
        }
    )
    return targets


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(meta: dict[str, Any], rows: list[dict[str, Any]], targets: list[dict[str, Any]]) -> str:
    """The Markdown report."""
    versions = meta["versions"]
    out = [
        f"## Ingest: dicomd vs Orthanc ({meta['date']})",
        "",
        f"Workload: {meta['files']} CT instances {ROWS}x{COLS} 16-bit, "
        f"{meta['bytes'] / 1e6:.1f} MB; {meta['cpus']} CPUs; "
        f"dicomd {versions.get('dicomd', 'n/a')}, Orthanc {versions.get('orthanc', 'n/a')}; "
        f"median of {meta['repeat']} run(s) per cell; fresh server per run; "
        f"{meta['duration_s']:.0f} s in all.",
        "",
        "| compression | clients | dicomd inst/s | dicomd MB/s | Orthanc inst/s | Orthanc MB/s "
        "| ratio dicomd/Orthanc | dicomd CPU ms/inst | Orthanc CPU ms/inst "
        "| dicomd stored MB | Orthanc stored MB | stored-size ratio | checks |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        d, o = row.get("dicomd", {}), row.get("orthanc", {})
        checks = [
            f"{SERVER_TITLE[s]} {'FAILED' if row[s]['failed'] else 'skipped'}"
            for s in SERVERS
            if s in row and not row[s]["all_ok"]
        ]
        out.append(
            f"| {'on' if row['compression'] else 'off'} | {row['clients']} "
            f"| {fmt(d.get('instances_per_s'))} | {fmt(d.get('MB_per_s'))} "
            f"| {fmt(o.get('instances_per_s'))} | {fmt(o.get('MB_per_s'))} "
            f"| {fmt(row['speed_ratio'], 2)} "
            f"| {fmt(d.get('cpu_ms_per_instance'), 2)} | {fmt(o.get('cpu_ms_per_instance'), 2)} "
            f"| {fmt(mb(d.get('stored_bytes')))} | {fmt(mb(o.get('stored_bytes')))} "
            f"| {fmt(row['size_ratio'], 3)} | {', '.join(checks) or 'ok'} |"
        )
    out += [
        "",
        "CPU ms/inst: the server's CPU time (user + system, all its processes) while "
        "bench_ingest ran, per instance uploaded; the client's is not counted.",
        "",
        "Stored MB is the storage folder's apparent size; `/statistics` TotalDiskSize:",
    ]
    for row in rows:
        sizes = ", ".join(
            f"{SERVER_TITLE[s]} {fmt(mb(row[s]['total_disk_size']))} MB"
            for s in SERVERS
            if s in row
        )
        out.append(
            f"- compression {'on' if row['compression'] else 'off'}, "
            f"{row['clients']} client(s): {sizes}"
        )
    out += ["", "Targets:", ""]
    for t in targets:
        value = t["value"]
        shown = (
            fmt(value, 3) if isinstance(value, float) else ("n/a" if value is None else str(value))
        )
        out.append(f"- **{t['status']}** {t['name']} (measured: {shown})")
        if t.get("failed_runs"):
            out.append(f"  - failed runs: {', '.join(t['failed_runs'])}")
    return "\n".join(out)


def mb(value: float | None) -> float | None:
    return None if value is None else value / 1e6


# --------------------------------------------------------------------------- main


def preflight(args: argparse.Namespace, tools: dict[str, Path], servers: list[str]) -> str | None:
    """Why the benchmark cannot run here, or None. Re-executes in a namespace first."""
    missing = [str(p) for p in tools.values() if not p.exists()]
    if missing:
        return f"shared tools not found: {', '.join(missing)} (use --shared DIR)"
    if os.environ.get(NETNS_MARK) != "1":
        reexec_in_netns(tools["in_netns.sh"])
    if not loopback_only():
        if "orthanc" in servers:
            return (
                "not in a loopback-only network namespace (ANCHOR_NO_NETNS set, or unshare "
                "failed): refusing to start Orthanc, which binds every interface"
            )
        log("warning: not in a loopback-only network namespace")
    if "dicomd" in servers:
        why = check_dicomd(shlex.split(args.dicomd_cmd))
        if why:
            return f"dicomd cannot run: {why}. Install the project or use --only orthanc."
    return None


def run_all(cells: list[Cell], ctx: Context) -> None:
    """Run every cell in order; skip a server after a failed start, and all after the limit."""
    broken: set[str] = set()
    for i, cell in enumerate(cells, 1):
        if cell.server in broken or ctx.remaining() < 5:
            why = "its server failed to start before" if cell.server in broken else "time limit"
            cell.result.update(ok=False, problems=[SKIPPED, why], server=cell.server)
            continue
        log(f"[{i}/{len(cells)}] {cell.label} ...")
        run_cell(cell, ctx)
        bench = cell.result.get("bench")
        if bench:
            res = cell.result
            cpu = 1000 * (res["server_user_s"] + res["server_system_s"]) / max(bench["files"], 1)
            log(
                f"  {bench['instances_per_s']:.1f} inst/s, {bench['MB_per_s']:.1f} MB/s, "
                f"server CPU {cpu:.2f} ms/inst (user {res['server_user_s']:.1f} s, "
                f"system {res['server_system_s']:.1f} s), "
                f"stored {cell.result['storage_apparent'] / 1e6:.1f} MB, "
                f"{'ok' if cell.result['ok'] else 'PROBLEMS'}"
            )
        elif "startup_s" not in cell.result:
            broken.add(cell.server)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench_dir = args.shared / "bench"
    names = ("gen_dicom.py", "bench_ingest.py", "orthanc_ctl.py", "in_netns.sh")
    tools = {n: bench_dir / n for n in names}
    servers = [args.only] if args.only else list(SERVERS)
    why = preflight(args, tools, servers)
    if why:
        log(why)
        return 2
    # Every exit path, SIGTERM included, goes through the finally blocks that stop servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    ctl = load_orthanc_ctl(bench_dir)
    data, files, nbytes = ensure_workload(args, tools["gen_dicom.py"])
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    ctx = Context(
        args=args,
        ctl=ctl,
        bench=tools["bench_ingest.py"],
        data=data,
        files=files,
        session=args.workdir / "runs" / f"ingest-{stamp}-{os.getpid()}",
        deadline=started + args.time_limit,
        dicomd_cmd=shlex.split(args.dicomd_cmd),
    )
    cells = plan(args, servers)
    ctx.session.mkdir(parents=True, exist_ok=True)
    ctx.delete_at_once = delete_between_runs(ctx, cells, nbytes)
    try:
        run_all(cells, ctx)
    finally:
        delete_deferred(ctx)

    rows = summarise(cells)
    targets = check_targets(rows, cells)
    meta = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "duration_s": time.monotonic() - started,
        "files": files,
        "bytes": nbytes,
        "data": str(data),
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version,
        "versions": {c.server: c.result["version"] for c in cells if c.result.get("version")},
        "argv": sys.argv,
        "shared": str(args.shared),
    }
    report = render(meta, rows, targets)
    print(report)
    out = args.json_out or args.workdir / "results" / f"ingest-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = [c.result for c in cells]
    results = {"meta": meta, "summary": rows, "targets": targets, "runs": runs, "report": report}
    out.write_text(json.dumps(results, indent=2, default=str))
    log(f"raw results: {out}\nserver logs: {ctx.session}")
    return 1 if any(t["status"] == "FAIL" for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
