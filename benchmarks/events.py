"""Event-engine benchmark: stable-event latency (dicomd vs Orthanc 1.10), event throughput to
no-op handlers, and what delivery costs the ingest rate.

Usage, from the project root (needs root, for a private network namespace)::

    python benchmarks/events.py              # full run, about 10 minutes on 2 cores
    python benchmarks/events.py --quick      # under 2 minutes, for development
    python benchmarks/events.py --no-orthanc --skip-stable   # the ingest part only

Three parts, each printed as a table:

1. **Stable-event latency.** For each ``StableAge`` (1 and 3 s), a dicomd and an Orthanc run
   side by side; each sample uploads one 5-instance series of a new patient and polls
   ``GET /changes`` every 0.05 s, as ``shared/bench/bench_stable.py`` does, until its
   StableSeries, StableStudy and StablePatient appear. The delay is counted from the answer to
   the last upload, minus ``StableAge``. dicomd also runs a handler (``noop_daemon.py
   --probe``) that writes down when it receives each Stable* event: the delay as a script
   inside the daemon would see it.
2. **Event throughput.** 10,000 small instances (64x64) uploaded by ``bench_ingest.py`` with 4
   clients while no-op handlers are registered; ``GET /events`` is polled every 0.1 s: how long
   until every handler's backlog is 0, and the largest backlog seen. Then *catch-up*: the
   daemon is restarted on the stored data with new handlers that start from the beginning of
   the log, so delivery runs alone: events/s per handler.
3. **Ingest overhead.** The same upload with 0, 1 and 4 no-op handlers, on fresh storage each
   run, ``--repeat`` runs each (median), with dicomd's default ``HttpProcesses`` and with 1;
   the slowdown against 0 handlers, target under 10%.

Every dicomd run is ``benchmarks/noop_daemon.py`` (the daemon of the checkout, ``daemon/`` on
``PYTHONPATH``, with N no-op handlers), 0 handlers included, so only the handlers differ.
Orthanc 1.10 binds every interface, so the script re-executes itself through
``shared/bench/in_netns.sh`` (a network namespace with only loopback), as ``ingest.py`` does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import requests

from benchlib import (
    NETNS_MARK,
    PROJECT_ROOT,
    RunError,
    dicomd_env,
    free_port,
    load_orthanc_ctl,
    loopback_only,
    read_tail,
    reexec_in_netns,
)

NOOP_DAEMON = PROJECT_ROOT / "benchmarks" / "noop_daemon.py"
# Throughput workload: 500 instances per patient (2 studies x 5 series x 50), 64x64 16-bit.
TP_STUDIES, TP_SERIES, TP_PER_SERIES, TP_SEED = 2, 5, 50, 3
# Stable-latency workload: one 5-instance series per patient, one patient per sample.
ST_PER_SERIES, ST_SEED = 5, 4
ROWS = COLS = 64
STABLE_LEVELS = ("StableSeries", "StableStudy", "StablePatient")
STABLE_POLL = 0.05  # as bench_stable.py
EVENTS_POLL = 0.1
# No stable events during the throughput and overhead runs: only delivery is compared.
INGEST_STABLE_AGE = 3600
TARGET_SLOWDOWN = 0.10
COMMON_CONFIG: dict[str, Any] = {
    "RemoteAccessAllowed": False,
    "AuthenticationEnabled": False,
    "DicomServerEnabled": False,
}


def log(msg: str) -> None:
    """Progress goes to stderr, so that stdout holds only the report."""
    print(msg, file=sys.stderr, flush=True)


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
    ap.add_argument("--quick", action="store_true", help="a smaller run, under 2 minutes")
    ap.add_argument("--instances", type=int, help="upload size, a multiple of 500 (10000)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent uploaders (4)")
    ap.add_argument("--handlers", help="no-op handler counts to compare (0,1,4)")
    ap.add_argument("--processes", help="HttpProcesses values, 0 = dicomd's default (0)")
    ap.add_argument("--repeat", type=int, help="runs per ingest cell, median shown (2)")
    ap.add_argument("--stable-ages", help="StableAge values in seconds (1,3)")
    ap.add_argument("--samples", type=int, help="stable-latency samples per server and age (5)")
    ap.add_argument("--skip-stable", action="store_true", help="skip part 1")
    ap.add_argument("--skip-ingest", action="store_true", help="skip parts 2 and 3")
    ap.add_argument("--no-catch-up", action="store_true", help="skip the catch-up runs")
    ap.add_argument("--no-orthanc", action="store_true", help="dicomd only (no namespace needed)")
    ap.add_argument("--time-limit", type=float, default=1800, help="bound on the whole run (s)")
    ap.add_argument("--json-out", type=Path, help="raw results (default: WORKDIR/results/)")
    ap.add_argument("--keep", action="store_true", help="keep the servers' storage folders")
    args = ap.parse_args(argv)
    quick = args.quick

    def default(value: Any, full: Any, fast: Any) -> Any:
        return value if value is not None else (fast if quick else full)

    args.instances = default(args.instances, 10_000, 2_000)
    args.repeat = default(args.repeat, 2, 1)
    args.samples = default(args.samples, 5, 3)
    try:
        args.handler_counts = ints(default(args.handlers, "0,1,4", "0,1"))
        args.process_counts = ints(default(args.processes, "0", "0"))
        args.ages = ints(default(args.stable_ages, "1,3", "1"))
    except ValueError:
        ap.error("--handlers, --processes and --stable-ages take comma-separated integers")
    if args.instances < 500 or args.instances % 500:
        ap.error("--instances must be a multiple of 500")
    if 0 not in args.handler_counts:
        ap.error("--handlers must include 0, the baseline")
    if min(args.repeat, args.samples, args.clients, *args.ages) < 1:
        ap.error("--repeat, --samples, --clients and --stable-ages must be at least 1")
    args.shared = args.shared.resolve()
    args.workdir = args.workdir.resolve()
    return args


def ints(text: str) -> list[int]:
    return sorted({int(v) for v in text.split(",") if v.strip()})


def ensure_workload(workdir: Path, gen: Path, name: str, gen_args: list[str]) -> Path:
    """Generate a workload once with gen_dicom.py and cache it under WORKDIR/data/."""
    gen_hash = hashlib.sha256(gen.read_bytes()).hexdigest()[:10]
    data = workdir / "data" / f"{name}-{gen_hash}"
    marker = data / "workload.json"
    if marker.exists():
        return data
    data.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=data.name + ".tmp-", dir=data.parent))
    log(f"workload: generating {name} ...")
    cmd = [sys.executable, str(gen), "--out", str(tmp), *gen_args]
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=3600)
        files = sorted(tmp.rglob("*.dcm"))
        info = {"files": len(files), "bytes": sum(f.stat().st_size for f in files), "cmd": cmd}
        (tmp / "workload.json").write_text(json.dumps(info, indent=2))
        try:
            tmp.rename(data)
        except OSError:  # another run finished the same workload first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return data


# --------------------------------------------------------------------------- servers


def session_cpu_seconds(sid: int) -> float:
    """CPU time (user + system) of every live process of session ``sid``: a dicomd main
    process started with start_new_session=True and its helper processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


class Dicomd:
    """``noop_daemon.py`` on a folder (config, storage and index inside it)."""

    def __init__(self, folder: Path, stable_age: int, processes: int) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage = folder / "storage"
        self.index = folder / "index"
        self.config = {
            "Name": "DICOMD-EVBENCH",
            "HttpPort": self.port,
            "StorageDirectory": "storage",
            "IndexDirectory": "index",
            "StableAge": stable_age,
            "HttpProcesses": processes,
            **COMMON_CONFIG,
        }
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(self.config, indent=2))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "dicomd.log"

    def start(self, *extra: str, timeout: float = 60) -> float:
        """Start with ``extra`` noop_daemon options; return the start-up time (s)."""
        cmd = [sys.executable, str(NOOP_DAEMON), "config.json", *extra]
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                cmd,
                stdout=logf,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                env=dicomd_env(),
                start_new_session=True,  # its own session: helpers are found and stopped
            )
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RunError(f"dicomd exited (rc={self.proc.returncode}):\n{self.tail()}")
            try:
                if requests.get(self.url + "/system", timeout=1).status_code == 200:
                    return time.monotonic() - t0
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RunError(f"dicomd did not answer within {timeout:.0f} s:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        return session_cpu_seconds(self.proc.pid) if self.proc else 0.0

    def main_cpu_seconds(self) -> float:
        """CPU time of the main process alone (the one that delivers events)."""
        if self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL to its session after ``timeout``; return the exit code."""
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

    def tail(self) -> str:
        return read_tail(self.log_path)

    def remove_data(self) -> None:
        shutil.rmtree(self.storage, ignore_errors=True)
        shutil.rmtree(self.index, ignore_errors=True)


# --------------------------------------------------------------------------- /events poller


@dataclass
class Sample:
    t: float  # time.monotonic()
    last: int
    positions: dict[str, int] | None  # None: no answer listed the handlers


class EventsPoller(threading.Thread):
    """Polls ``GET /events`` every EVENTS_POLL seconds, each time on a new connection.

    With ``HttpProcesses`` above 1 a request may be served by a helper process, whose
    ``/events`` lists no handlers (only the main process delivers); such answers are
    counted and the request is made again, up to 8 times."""

    def __init__(self, url: str, names: list[str]) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.names = names
        self.samples: list[Sample] = []
        self.helper_answers = 0
        self.errors = 0
        self.halt = threading.Event()

    def poll(self) -> Sample | None:
        for _ in range(8):
            try:
                answer = requests.get(
                    self.url + "/events", headers={"Connection": "close"}, timeout=10
                ).json()
            except (requests.RequestException, ValueError):
                self.errors += 1
                return None
            positions = {h["Name"]: h["Position"] for h in answer["Handlers"]}
            if all(n in positions for n in self.names):
                return Sample(time.monotonic(), answer["Last"], positions)
            self.helper_answers += 1
        return Sample(time.monotonic(), answer["Last"], None)

    def run(self) -> None:
        while not self.halt.is_set():
            sample = self.poll()
            if sample is not None:
                self.samples.append(sample)
            self.halt.wait(EVENTS_POLL)

    def wait_drained(self, last: int, timeout: float) -> bool:
        """Wait until a sample shows every handler at ``last`` or beyond."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.samples and drained(self.samples[-1], self.names, last):
                return True
            time.sleep(EVENTS_POLL / 2)
        return False


def connections_by_pid(port: int) -> dict[int, int]:
    """Established connections to ``port`` by the pid that holds the server's end (ss)."""
    try:
        out = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    counts: dict[int, int] = {}
    for line in out.splitlines():
        for part in line.split("pid=")[1:]:
            pid = int(part.split(",", 1)[0])
            counts[pid] = counts.get(pid, 0) + 1
    return counts


class ConnectionSampler(threading.Thread):
    """Every few seconds, how many of the upload's connections the main process serves:
    with HttpProcesses above 1 the kernel hands each keep-alive connection to whichever
    process accepts first, so the split varies from run to run."""

    def __init__(self, port: int, main_pid: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.main_pid = main_pid
        self.splits: list[tuple[int, int]] = []  # (on the main process, on helpers)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(3):
            counts = connections_by_pid(self.port)
            main = counts.pop(self.main_pid, 0)
            self.splits.append((main, sum(counts.values())))


def drained(sample: Sample, names: list[str], last: int) -> bool:
    if not names:
        return True
    return sample.positions is not None and min(sample.positions[n] for n in names) >= last


def backlog(sample: Sample, names: list[str]) -> int | None:
    if not names or sample.positions is None:
        return None
    return sample.last - min(sample.positions[n] for n in names)


# --------------------------------------------------------------------------- part 1


def stable_sample(url: str, files: list[Path], stable_age: int, timeout: float) -> dict[str, Any]:
    """Upload one series, poll /changes until its three Stable* events appear (the method of
    bench_stable.py); delays are from the last upload's answer, minus StableAge."""
    s = requests.Session()
    since = s.get(url + "/changes", params={"last": ""}, timeout=30).json()["Last"]
    answer: dict[str, Any] = {}
    for f in files:
        r = s.post(
            url + "/instances",
            data=f.read_bytes(),
            headers={"Content-Type": "application/dicom"},
            timeout=60,
        )
        r.raise_for_status()
        answer = r.json()
    t_last, wall_last = time.perf_counter(), time.time()
    ids = {
        "StableSeries": answer["ParentSeries"],
        "StableStudy": answer["ParentStudy"],
        "StablePatient": answer["ParentPatient"],
    }
    seen: dict[str, float] = {}
    while len(seen) < 3 and time.perf_counter() - t_last < stable_age + timeout:
        page = s.get(url + "/changes", params={"since": since, "limit": 100}, timeout=30).json()
        now = time.perf_counter()
        for c in page["Changes"]:
            kind = c["ChangeType"]
            if ids.get(kind) == c["ID"] and kind not in seen:
                seen[kind] = now - t_last - stable_age
        since = page["Last"]
        if page.get("Done", True):
            time.sleep(STABLE_POLL)
    return {"ids": ids, "wall_last": wall_last, "changes": seen}


def probe_delays(probe: Path, sample: dict[str, Any], stable_age: int) -> dict[str, float]:
    """When the in-daemon probe handler saw this sample's Stable* events (minus StableAge)."""
    wanted = {(kind, rid) for kind, rid in sample["ids"].items()}
    found: dict[str, float] = {}
    end = time.monotonic() + 2
    while len(found) < 3 and time.monotonic() < end:
        try:
            lines = probe.read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            t, kind, _level, rid = line.split()
            if (kind, rid) in wanted:
                found[kind] = float(t) - sample["wall_last"] - stable_age
        if len(found) < 3:
            time.sleep(0.05)
    return found


def run_stable(ctx: Context) -> list[dict[str, Any]]:
    """For each StableAge: dicomd and Orthanc up together, samples alternating."""
    results = []
    for age in ctx.args.ages:
        folder = ctx.session / f"stable-{age}"
        dicomd = Dicomd(folder / "dicomd", stable_age=age, processes=0)
        probe = folder / "dicomd" / "probe.txt"
        orthanc = None
        if ctx.ctl is not None:
            orthanc = ctx.ctl.Orthanc(
                http_port=free_port(),
                dicom_port=free_port(),
                stable_age=age,
                workdir=str(folder / "orthanc"),
                dicom_enabled=False,
                extra=dict(COMMON_CONFIG),
            )
        res: dict[str, Any] = {"stable_age": age, "dicomd": [], "orthanc": [], "probe": []}
        try:
            dicomd.start("--handlers", "0", "--probe", str(probe))
            if orthanc is not None:
                orthanc.start(timeout=60)
            for i, series in enumerate(ctx.stable_series):
                servers = [("dicomd", dicomd.url)]
                if orthanc is not None:
                    servers.append(("orthanc", orthanc.url))
                if i % 2:
                    servers.reverse()  # neither server always goes first
                for name, url in servers:
                    sample = stable_sample(url, series, age, timeout=15)
                    res[name].append(sample["changes"])
                    if name == "dicomd":
                        res["probe"].append(probe_delays(probe, sample, age))
                log(
                    f"  StableAge {age}, sample {i + 1}: "
                    + ", ".join(
                        f"{n} {fmt(res[n][-1].get('StableSeries'), 2)} s"
                        for n in ("dicomd", "probe", "orthanc")
                        if res[n]
                    )
                )
        except (RunError, RuntimeError, requests.RequestException, KeyError) as exc:
            res["error"] = f"{type(exc).__name__}: {exc}"
            log(f"  StableAge {age}: FAILED: {exc}")
        finally:
            dicomd.stop()
            if orthanc is not None:
                orthanc.stop()
            if not ctx.args.keep:
                dicomd.remove_data()
                shutil.rmtree(folder / "orthanc" / "storage", ignore_errors=True)
                shutil.rmtree(folder / "orthanc" / "index", ignore_errors=True)
        results.append(res)
    return results


# --------------------------------------------------------------------------- parts 2 and 3


@dataclass
class Context:
    args: argparse.Namespace
    ctl: ModuleType | None
    bench_ingest: Path
    data: Path
    files: int
    stable_series: list[list[Path]]
    session: Path
    deadline: float
    helper_answers: int = 0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class IngestRun:
    processes: int
    handlers: int
    rep: int
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"p{self.processes}-h{self.handlers}-r{self.rep + 1}"


def analyse_live(samples: list[Sample], names: list[str], last: int) -> dict[str, Any]:
    """From the /events samples of an upload: when events started, when the log stopped
    growing (the upload's end), when every handler reached the end, the largest backlog."""
    first = next((s.t for s in samples if s.last > 0), None)
    upload_end = next((s.t for s in samples if s.last >= last), None)
    done = next((s.t for s in samples if s.last >= last and drained(s, names, last)), None)
    backlogs = [b for s in samples if (b := backlog(s, names)) is not None]
    out: dict[str, Any] = {"events": last, "max_backlog": max(backlogs, default=None)}
    if first is not None and upload_end is not None and done is not None:
        out["events_span_s"] = upload_end - first
        out["until_backlog_0_s"] = done - first
        out["backlog_0_after_upload_s"] = done - upload_end
        out["delivered_per_s"] = last / (done - first) if done > first else None
    return out


def upload(run: IngestRun, ctx: Context, dicomd: Dicomd, folder: Path) -> None:
    """bench_ingest.py against a started dicomd, /events polled meanwhile."""
    res = run.result
    names = [f"noop-{i}" for i in range(1, run.handlers + 1)]
    poller = EventsPoller(dicomd.url, names)
    cpu0, main0 = dicomd.cpu_seconds(), dicomd.main_cpu_seconds()
    sampler = ConnectionSampler(dicomd.port, dicomd.proc.pid if dicomd.proc else 0)
    poller.start()
    sampler.start()
    bench_json = folder / "bench.json"
    cmd = [sys.executable, str(ctx.bench_ingest), "--url", dicomd.url, "--dir", str(ctx.data)]
    cmd += ["--clients", str(ctx.args.clients), "--label", run.label]
    cmd += ["--json-out", str(bench_json)]
    try:
        with open(folder / "bench.log", "wb") as blog:
            subprocess.run(
                cmd, stdout=blog, stderr=subprocess.STDOUT, timeout=max(ctx.remaining(), 1)
            )
        if not bench_json.exists():
            raise RunError("bench_ingest wrote no result:\n" + read_tail(folder / "bench.log"))
        bench = json.loads(bench_json.read_text())
        res["bench"] = {k: v for k, v in bench.items() if not k.startswith("stats_")}
        res["inst_per_s"] = bench["instances_per_s"]
        if bench["uploaded_ok"] != ctx.files or bench["errors"] or not bench["verify_count_ok"]:
            res["problems"].append(f"upload incomplete: {bench['uploaded_ok']} of {ctx.files}")
        last = requests.get(dicomd.url + "/changes", params={"last": ""}, timeout=30).json()
        last_seq = int(last["Last"])
        if not poller.wait_drained(last_seq, timeout=min(300, max(ctx.remaining(), 1))):
            res["problems"].append("the handlers' backlog did not reach 0")
        res["cpu_ms_per_instance"] = (dicomd.cpu_seconds() - cpu0) * 1000 / ctx.files
        res["main_cpu_ms_per_instance"] = (dicomd.main_cpu_seconds() - main0) * 1000 / ctx.files
    finally:
        poller.halt.set()
        sampler.halt.set()
        poller.join()
        sampler.join()
    # The most frequent split seen while uploading (the upload's 4 keep-alive connections,
    # plus now and then one of the poller's).
    splits = sampler.splits
    res["connection_splits"] = splits
    res["main_connections"] = max(set(splits), key=splits.count)[0] if splits else None
    res["live"] = analyse_live(poller.samples, names, last_seq)
    res["helper_answers"] = poller.helper_answers
    ctx.helper_answers += poller.helper_answers


def catch_up(dicomd: Dicomd, handlers: int, ctx: Context) -> dict[str, Any]:
    """Restart on the stored data with ``handlers`` new handlers that start from the
    beginning of the log: delivery alone, no uploads. Events/s per handler."""
    prefix = f"catchup{handlers}"
    names = [f"{prefix}-{i}" for i in range(1, handlers + 1)]
    startup = dicomd.start("--handlers", str(handlers), "--name", prefix, "--from-start")
    poller = EventsPoller(dicomd.url, names)
    poller.start()
    try:
        last = int(requests.get(dicomd.url + "/changes?last", timeout=30).json()["Last"])
        ok = poller.wait_drained(last, timeout=min(300, max(ctx.remaining(), 1)))
    finally:
        poller.halt.set()
        poller.join()
        rc = dicomd.stop()
    ctx.helper_answers += poller.helper_answers
    seen = [s for s in poller.samples if s.positions is not None]
    out: dict[str, Any] = {"handlers": handlers, "events": last, "startup_s": startup}
    out.update(ok=ok and rc == 0, stop_rc=rc)
    if len(seen) >= 2 and ok:
        first = seen[0]
        end = next(s for s in seen if drained(s, names, last))
        behind = last - min(first.positions[n] for n in names)  # type: ignore[index]
        out["measured_events"] = behind
        out["seconds"] = end.t - first.t
        # The first sample may already show everything delivered: then only a lower bound.
        out["per_handler_per_s"] = behind / (end.t - first.t) if end.t > first.t else None
    return out


def run_ingest(run: IngestRun, ctx: Context) -> None:
    folder = ctx.session / run.label
    res = run.result
    res.update(processes=run.processes, handlers=run.handlers, rep=run.rep, problems=[])
    dicomd = Dicomd(folder, stable_age=INGEST_STABLE_AGE, processes=run.processes)
    try:
        res["startup_s"] = dicomd.start("--handlers", str(run.handlers))
        upload(run, ctx, dicomd, folder)
    except (RunError, subprocess.TimeoutExpired, requests.RequestException, KeyError) as exc:
        res["problems"].append(f"{type(exc).__name__}: {exc}")
        log(f"  {run.label}: FAILED: {exc}")
    finally:
        res["stop_rc"] = dicomd.stop()
    if res["stop_rc"] != 0:
        res["problems"].append(f"dicomd exit code {res['stop_rc']} after SIGTERM")
    # Catch-up, once per HttpProcesses setting, on the data of its first baseline run.
    if run.handlers == 0 and run.rep == 0 and not res["problems"] and not ctx.args.no_catch_up:
        res["catch_up"] = []
        for n in sorted({1, max(ctx.args.handler_counts)}):
            if ctx.remaining() < 30:
                break
            try:
                res["catch_up"].append(catch_up(dicomd, n, ctx))
            except (RunError, requests.RequestException, KeyError) as exc:
                res["catch_up"].append({"handlers": n, "ok": False, "error": str(exc)})
    if not ctx.args.keep:
        dicomd.remove_data()
    res["ok"] = not res["problems"]


def run_all_ingest(ctx: Context) -> list[IngestRun]:
    """Order: repetition, then HttpProcesses, then handlers, so drift hits all cells alike;
    the handler counts rotate from one repetition to the next, so that no count always runs
    first (right after the stable part, or after the catch-up)."""
    counts = ctx.args.handler_counts
    runs = [
        IngestRun(p, h, rep)
        for rep in range(ctx.args.repeat)
        for p in ctx.args.process_counts
        for h in counts[rep % len(counts) :] + counts[: rep % len(counts)]
    ]
    for i, run in enumerate(runs, 1):
        if ctx.remaining() < 20:
            run.result.update(ok=False, problems=["skipped: time limit"], skipped=True)
            continue
        log(f"[{i}/{len(runs)}] {run.label} ...")
        run_ingest(run, ctx)
        r = run.result
        live = r.get("live", {})
        log(
            f"  {fmt(r.get('inst_per_s'))} inst/s, {r.get('main_connections')} connection(s) "
            f"on the main process, CPU {fmt(r.get('cpu_ms_per_instance'), 2)} "
            f"ms/inst (main {fmt(r.get('main_cpu_ms_per_instance'), 2)}), "
            f"max backlog {live.get('max_backlog')}, backlog 0 "
            f"{fmt(live.get('backlog_0_after_upload_s'), 2)} s after the upload"
            + "".join(
                f"; catch-up x{c['handlers']}: {fmt(c.get('per_handler_per_s'), 0)} ev/s"
                for c in r.get("catch_up", [])
            )
        )
    return runs


# --------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def med_max(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values):.2f} ({max(values):.2f})"


def render_stable(stable: list[dict[str, Any]], samples: int) -> list[str]:
    out = [
        "### Stable-event latency: delay after StableAge (s)",
        "",
        f"Median (max) of {samples} samples; each a 5-instance series of a new patient, "
        f"`GET /changes` polled every {STABLE_POLL} s from the end of the last upload.",
        "",
        "| StableAge | event | dicomd, /changes | dicomd, in-daemon handler | Orthanc, /changes |",
        "|---:|---|---:|---:|---:|",
    ]
    for res in stable:
        for kind in STABLE_LEVELS:
            cells = [
                med_max([s[kind] for s in res[name] if kind in s])
                for name in ("dicomd", "probe", "orthanc")
            ]
            out.append(f"| {res['stable_age']} s | {kind} | " + " | ".join(cells) + " |")
        if res.get("error"):
            out.append(f"| {res['stable_age']} s | FAILED: {res['error'][:80]} | | | |")
    return out


def summarise_ingest(runs: list[IngestRun]) -> list[dict[str, Any]]:
    rows = []
    for p, h in sorted({(r.processes, r.handlers) for r in runs}):
        mine = [r.result for r in runs if (r.processes, r.handlers) == (p, h)]
        good = [r for r in mine if r.get("ok")]
        row: dict[str, Any] = {"processes": p, "handlers": h, "runs": len(good)}
        row["inst_per_s"] = med([r["inst_per_s"] for r in good])
        row["all_inst_per_s"] = [round(r["inst_per_s"], 1) for r in good]
        row["per_run"] = [
            f"{r['inst_per_s']:.0f}"
            + (
                f" m{r['main_connections']}"
                if p != 1 and r.get("main_connections") is not None
                else ""
            )
            for r in good
        ]
        row["cpu_ms"] = med([r["cpu_ms_per_instance"] for r in good])
        row["main_cpu_ms"] = med([r["main_cpu_ms_per_instance"] for r in good])
        lives = [r["live"] for r in good if "until_backlog_0_s" in r.get("live", {})]
        for key in ("until_backlog_0_s", "backlog_0_after_upload_s", "delivered_per_s"):
            row[key] = med([v[key] for v in lives if v.get(key) is not None])
        row["max_backlog"] = max((v["max_backlog"] or 0 for v in lives), default=None)
        row["events"] = med([v["events"] for v in lives])
        row["upload_s"] = med([r["bench"]["wall_s"] for r in good])
        rows.append(row)
    # Paired: each run against the baseline run of the same repetition (a few minutes apart),
    # so that the machine's slow drift cancels out; the median of those ratios.
    rate = {
        (r.processes, r.handlers, r.rep): r.result["inst_per_s"] for r in runs if r.result.get("ok")
    }
    for row in rows:
        ratios = [
            v / rate[(p, 0, rep)]
            for (p, h, rep), v in rate.items()
            if (p, h) == (row["processes"], row["handlers"]) and (p, 0, rep) in rate
        ]
        row["ratios"] = [round(r, 3) for r in ratios]
        row["ratio"] = med(ratios)
    return rows


def processes_label(p: int) -> str:
    return f"default ({min(os.cpu_count() or 1, 4)})" if p == 0 else str(p)


def render_ingest(
    rows: list[dict[str, Any]], runs: list[IngestRun], meta: dict[str, Any]
) -> list[str]:
    n = meta["instances"]
    out = [
        "### Event throughput: no-op handlers during the upload",
        "",
        f"{n:,} instances 64x64 uploaded by {meta['clients']} clients; `GET /events` polled "
        f"every {EVENTS_POLL} s. 'Until backlog 0' runs from the first logged event to the "
        "first poll that showed every handler at the end of the log.",
        "",
        "| HttpProcesses | handlers | events | upload s | until backlog 0 s | backlog 0 after "
        "upload s | delivered events/s | max backlog |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["handlers"] == 0:
            continue
        out.append(
            f"| {processes_label(r['processes'])} | {r['handlers']} | {fmt(r['events'], 0)} "
            f"| {fmt(r['upload_s'])} | {fmt(r['until_backlog_0_s'])} "
            f"| {fmt(r['backlog_0_after_upload_s'], 2)} | {fmt(r['delivered_per_s'], 0)} "
            f"| {r['max_backlog']} |"
        )
    catch = [
        (run.processes, c) for run in runs for c in run.result.get("catch_up", []) if c.get("ok")
    ]
    if catch:
        out += [
            "",
            "Catch-up (delivery alone): the daemon restarted on the stored data with new "
            "handlers starting at the beginning of the log:",
            "",
            "| HttpProcesses | handlers | events per handler | seconds | events/s per handler |",
            "|---|---:|---:|---:|---:|",
        ]
        for p, c in catch:
            out.append(
                f"| {processes_label(p)} | {c['handlers']} | {c.get('measured_events', 'n/a')} "
                f"| {fmt(c.get('seconds'), 2)} | {fmt(c.get('per_handler_per_s'), 0)} |"
            )
    out += [
        "",
        "### Ingest overhead of delivery",
        "",
        f"Same upload, fresh storage each run, median of {meta['repeat']} run(s). 'vs 0 "
        "handlers' is the median of each run's rate over the rate of the 0-handler run of the "
        "same repetition. In brackets, each run's rate and, with several processes, 'mN': the "
        f"main process (the one that delivers) held N of bench_ingest's {meta['clients'] + 1} "
        f"connections ({meta['clients']} uploading, 1 checking). Server CPU is every dicomd "
        "process's user + system time during the run.",
        "",
        "| HttpProcesses | handlers | inst/s (runs) | vs 0 handlers | slowdown "
        "| server CPU ms/instance | of which main process |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        slowdown = None if r["ratio"] is None else 1 - r["ratio"]
        runs_shown = ", ".join(r["per_run"]) or "none"
        out.append(
            f"| {processes_label(r['processes'])} | {r['handlers']} "
            f"| {fmt(r['inst_per_s'])} ({runs_shown}) | {fmt(r['ratio'], 3)} "
            f"| {'' if r['handlers'] == 0 else fmt_pct(slowdown)} | {fmt(r['cpu_ms'], 2)} "
            f"| {fmt(r['main_cpu_ms'], 2)} |"
        )
    return out


def fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def targets(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        if r["handlers"] != 1:
            continue
        if r["ratio"] is None:
            status, shown = "n/a", "n/a"
        else:
            slowdown = 1 - r["ratio"]
            status = "PASS" if slowdown < TARGET_SLOWDOWN else "FAIL"
            shown = fmt_pct(slowdown)
        out.append(
            f"- **{status}** 1 no-op handler slows ingest by less than "
            f"{TARGET_SLOWDOWN:.0%} (HttpProcesses {processes_label(r['processes'])}: {shown})"
        )
    return out


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench_dir = args.shared / "bench"
    tools = {n: bench_dir / n for n in ("gen_dicom.py", "bench_ingest.py", "in_netns.sh")}
    missing = [str(p) for p in tools.values() if not p.exists()]
    if missing:
        log(f"shared tools not found: {', '.join(missing)} (use --shared DIR)")
        return 2
    if not args.no_orthanc and not args.skip_stable:
        if os.environ.get(NETNS_MARK) != "1":
            reexec_in_netns(tools["in_netns.sh"])
        if not loopback_only():
            log("not in a loopback-only network namespace: refusing to start Orthanc")
            return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    load_at_start = os.getloadavg()[0]
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    patients = args.instances // 500
    data = ensure_workload(
        args.workdir,
        tools["gen_dicom.py"],
        f"events-{patients}p{TP_STUDIES}st{TP_SERIES}se{TP_PER_SERIES}i-{ROWS}x{COLS}",
        ["--patients", str(patients), "--studies", str(TP_STUDIES), "--series", str(TP_SERIES)]
        + ["--instances-per-series", str(TP_PER_SERIES), "--rows", str(ROWS), "--cols", str(COLS)]
        + ["--seed", str(TP_SEED)],
    )
    stable_data = ensure_workload(
        args.workdir,
        tools["gen_dicom.py"],
        f"stable-{args.samples}p1st1se{ST_PER_SERIES}i-{ROWS}x{COLS}",
        ["--patients", str(args.samples), "--studies", "1", "--series", "1"]
        + ["--instances-per-series", str(ST_PER_SERIES), "--rows", str(ROWS)]
        + ["--cols", str(COLS), "--seed", str(ST_SEED)],
    )
    ctx = Context(
        args=args,
        ctl=None if args.no_orthanc else load_orthanc_ctl(bench_dir),
        bench_ingest=tools["bench_ingest.py"],
        data=data,
        files=len(list(data.rglob("*.dcm"))),
        stable_series=[sorted(p.rglob("*.dcm")) for p in sorted(stable_data.glob("p*"))],
        session=args.workdir / "runs" / f"events-{stamp}-{os.getpid()}",
        deadline=started + args.time_limit,
    )
    stable: list[dict[str, Any]] = []
    runs: list[IngestRun] = []
    if not args.skip_stable:
        log("part 1: stable-event latency")
        stable = run_stable(ctx)
    if not args.skip_ingest:
        log("parts 2 and 3: throughput and ingest overhead")
        runs = run_all_ingest(ctx)

    meta = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "duration_s": time.monotonic() - started,
        "instances": ctx.files,
        "clients": args.clients,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "load_average_start": load_at_start,
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
        "argv": sys.argv,
        "helper_answers": ctx.helper_answers,
    }
    out = [
        f"## Events ({meta['date']})",
        "",
        f"{meta['cpus']} CPUs, load average {meta['load_average_start']:.2f} at the start and "
        f"{meta['load_average'][0]:.2f} at the end (the machine is shared); "
        f"{meta['duration_s']:.0f} s in all.",
        "",
    ]
    rows: list[dict[str, Any]] = []
    if stable:
        out += [*render_stable(stable, args.samples), ""]
    if runs:
        rows = summarise_ingest(runs)
        out += [*render_ingest(rows, runs, meta), "", "Target:", "", *targets(rows)]
        bad = [r.label for r in runs if not r.result.get("ok")]
        if bad:
            out.append(f"- runs with problems (not in the medians): {', '.join(bad)}")
        if ctx.helper_answers:
            out.append(
                f"- {ctx.helper_answers} `GET /events` answers came from a helper process and "
                "listed no handlers; they were asked again"
            )
    report = "\n".join(out)
    print(report)
    path = args.json_out or args.workdir / "results" / f"events-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = {"meta": meta, "stable": stable, "ingest": rows, "runs": [r.result for r in runs]}
    path.write_text(json.dumps({**raw, "report": report}, indent=2, default=str))
    log(f"raw results: {path}\nserver logs: {ctx.session}")
    failed = any(line.startswith("- **FAIL**") for line in out)
    return 1 if failed or any(not r.result.get("ok") for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
