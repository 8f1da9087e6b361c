"""Lua benchmark: the cost of an ``OnStoredInstance`` script on ingestion, dicomd and Orthanc.

Usage, from the project root (as root: Orthanc runs in a loopback-only network namespace)::

    python benchmarks/lua.py                     # 2000 small CT instances, 4 clients, median of 3
    python benchmarks/lua.py --patients 2 --repeat 1
    python benchmarks/lua.py --only dicomd       # dicomd only, no namespace needed

For each server and each case (no script; a script whose ``OnStoredInstance`` sets one
metadata value through ``RestApiPut``) it starts a fresh server with empty storage, uploads
the workload with ``shared/bench/bench_ingest.py`` and, with the script, waits until the last
instance has its metadata. It prints a Markdown table: the upload rate, the rate including
the script's work ("effective": all files uploaded and every callback done), and the overhead
of the script relative to the same server without it. Target: dicomd's overhead under 10%.

Exit status: 0 when the target is met, 1 when not, 2 when the benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from benchlib import NETNS_MARK, PROJECT_ROOT, free_port

TARGET_OVERHEAD = 0.10
SCRIPT = """
function OnStoredInstance(instanceId, tags, metadata, origin)
   RestApiPut('/instances/' .. instanceId .. '/metadata/Sample', 'seen')
end
"""


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early ({proc.returncode})")
        try:
            if requests.get(url + "/system", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not start")


class Dicomd:
    def __init__(self, folder: Path, lua: Path | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "HttpPort": self.port,
            "StableAge": 2,
            "UserMetadata": {"Sample": 1024},
            "LuaScripts": [str(lua)] if lua else [],
        }
        self.config = folder / "dicomd.json"
        self.config.write_text(json.dumps(config))
        self.log = folder / "dicomd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Dicomd:
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "daemon")}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dicomd", "serve", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        wait_up(self.url, self.proc)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def run_case(args: argparse.Namespace, server: str, lua: Path | None, work: Path) -> dict[str, Any]:
    """One fresh server, one upload of the workload; bench_ingest's JSON."""
    folder = Path(tempfile.mkdtemp(prefix=f"{server}-", dir=work))
    out = folder / "result.json"
    command = [
        sys.executable,
        str(args.shared / "bench_ingest.py"),
        "--dir",
        str(args.data),
        "--clients",
        str(args.clients),
        "--verify-sample",
        "5",
        "--check-ids",
        "5",
        "--json-out",
        str(out),
    ]
    if lua is not None:
        command += ["--wait-metadata", "Sample"]
    if server == "dicomd":
        with Dicomd(folder, lua) as dicomd:
            subprocess.run([*command, "--url", dicomd.url], check=True, stdout=subprocess.DEVNULL)
    else:
        sys.path.insert(0, str(args.shared))
        from orthanc_ctl import Orthanc  # type: ignore[import-not-found]

        orthanc = Orthanc(
            http_port=free_port(),
            dicom_port=free_port(),
            lua_scripts=[str(lua)] if lua else [],
            workdir=str(folder / "orthanc"),
            dicom_enabled=False,
        )
        with orthanc:
            subprocess.run([*command, "--url", orthanc.url], check=True, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads(out.read_text())
    if result["errors"] or (lua is not None and result.get("hook_missing_after_wait")):
        raise RuntimeError(f"{server} run had errors: {result.get('error_samples')}")
    return result


def generate(args: argparse.Namespace) -> None:
    if args.data.exists() and any(args.data.rglob("*.dcm")):
        return
    print(f"generating the workload in {args.data}...", file=sys.stderr)
    subprocess.run(
        [
            sys.executable,
            str(args.shared / "gen_dicom.py"),
            "--out",
            str(args.data),
            "--patients",
            str(args.patients),
            "--rows",
            "128",
            "--cols",
            "128",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=20, help="100 instances each")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("dicomd", "orthanc"))
    parser.add_argument("--shared", type=Path, default=PROJECT_ROOT.parent / "shared" / "bench")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dicomd-bench"
    )
    args = parser.parse_args()
    if not (args.shared / "bench_ingest.py").exists():
        print(f"shared bench tools not found in {args.shared}", file=sys.stderr)
        return 2
    if args.only != "dicomd" and os.environ.get(NETNS_MARK) != "1":
        netns = str(args.shared / "in_netns.sh")
        env = {**os.environ, NETNS_MARK: "1"}
        return subprocess.call([netns, sys.executable, *sys.argv], env=env)
    args.data = args.workdir / "data" / f"lua-{args.patients}p-128"
    args.workdir.mkdir(parents=True, exist_ok=True)
    generate(args)
    work = Path(tempfile.mkdtemp(prefix="lua-runs-", dir=args.workdir))
    lua = work / "set-metadata.lua"
    lua.write_text(SCRIPT)
    servers = [s for s in ("dicomd", "orthanc") if args.only in (None, s)]
    rates: dict[tuple[str, str], list[float]] = {}
    effective: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        for server in servers:
            for case, script in (("no script", None), ("script", lua)):
                result = run_case(args, server, script, work)
                rates.setdefault((server, case), []).append(result["instances_per_s"])
                eff = result.get("hook_effective_instances_per_s", result["instances_per_s"])
                effective.setdefault((server, case), []).append(eff)
                print(f"{server} {case}: {result['instances_per_s']:.0f}/s", file=sys.stderr)
    files = len(list(args.data.rglob("*.dcm")))
    print(f"{files} CT instances of 128x128, {args.clients} clients, median of {args.repeat}\n")
    print("| server | Lua script | upload inst/s | effective inst/s | overhead |")
    print("|---|---|---:|---:|---:|")
    overheads: dict[str, float] = {}
    for server in servers:
        base = statistics.median(effective[(server, "no script")])
        for case in ("no script", "script"):
            up = statistics.median(rates[(server, case)])
            eff = statistics.median(effective[(server, case)])
            overhead = 1 - eff / base
            if case == "script":
                overheads[server] = overhead
            shown = f"{overhead:.1%}" if case == "script" else "–"
            print(f"| {server} | {case} | {up:.0f} | {eff:.0f} | {shown} |")
    met = overheads["dicomd"] < TARGET_OVERHEAD if "dicomd" in overheads else False
    verdict = "PASS" if met else "FAIL"
    print(f"\nTarget: dicomd's overhead under {TARGET_OVERHEAD:.0%}: {verdict}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
