"""The command line; the only place that parses argv."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from . import __version__
from .config import load_config
from .errors import ConfigError, StartError, StorageInUse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dicomd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dicomd {__version__}")
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the daemon in the foreground")
    serve.add_argument("--config", type=Path, help="configuration file (JSON with comments)")
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", type=Path)
    upload = sub.add_parser(
        "import",
        help="upload DICOM files and ZIPs (folders are walked) to a dicomd or an Orthanc",
    )
    upload.add_argument("paths", type=Path, nargs="+", metavar="PATH")
    upload.add_argument("--url", default="http://127.0.0.1:8042", help="the server's REST API")
    upload.add_argument("--user", help="HTTP Basic user name")
    upload.add_argument("--password", help="HTTP Basic password")
    upload.add_argument("--concurrency", type=int, default=4, help="uploads at once (4)")
    trial = sub.add_parser(
        "test-script",
        help="run Lua or Python scripts on DICOM files in a throwaway daemon and report",
    )
    trial.add_argument("scripts", type=Path, nargs="+", metavar="SCRIPT")
    trial.add_argument("--input", type=Path, nargs="+", required=True, metavar="PATH")
    trial.add_argument("--config", type=Path, help="a configuration to start from")
    trial.add_argument("--send", action="store_true", help="really send forwards to peers")
    trial.add_argument("--json", action="store_true", help="print the report as JSON")
    replay = sub.add_parser(
        "replay",
        help="deliver recorded events of a stopped daemon's change log again, to Lua or "
        "Python scripts, and report",
    )
    replay.add_argument(
        "--since", type=int, required=True, metavar="SEQ", help="replay the events after SEQ"
    )
    replay.add_argument("--until", type=int, metavar="SEQ", help="up to SEQ (default: the last)")
    replay.add_argument(
        "--script", type=Path, action="append", required=True, dest="scripts", metavar="SCRIPT"
    )
    replay.add_argument("--config", type=Path, help="the daemon's configuration file")
    replay.add_argument(
        "--dry-run", action="store_true", help="list what the scripts would do; change nothing"
    )
    replay.add_argument("--json", action="store_true", help="print the report as JSON")
    # Internal: a helper process started by `serve` (configuration on standard input).
    sub.add_parser("serve-helper")
    return parser


def _tune_for_uploads() -> None:
    """Upload threads hand the GIL to each other around every socket, file, zlib and SQLite
    call; Python's default 5 ms switch interval makes each hand-over wait behind threads
    busy in Python code. 1 ms measured about 30% more uploads per second with 4 clients."""
    sys.setswitchinterval(0.001)


def _serve(config_path: Path | None) -> int:
    from .app import Daemon

    _tune_for_uploads()
    signalled = threading.Event()
    running: list[Daemon] = []

    def on_signal(signum: int, _frame: object) -> None:
        logging.getLogger("dicomd").info("signal %d received, stopping", signum)
        signalled.set()
        for daemon in running:
            daemon.stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while True:  # once, or again after each /tools/reset
        daemon = Daemon(load_config(config_path))
        running[:] = [daemon]
        try:
            daemon.start()
            if signalled.is_set():  # a signal came while it was starting
                daemon.stop_requested.set()
            daemon.stop_requested.wait()
        finally:
            daemon.stop()
        if signalled.is_set() or not daemon.restart_requested:
            return 0
        logging.getLogger("dicomd").info("starting again, as /tools/reset asked")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "serve":
            return _serve(args.config)
        if args.command == "serve-helper":
            _tune_for_uploads()
            from .app import run_helper

            return run_helper(sys.stdin.buffer)
        if args.command == "import":
            from .ingest.importer import ImportFailed, Server, run_import

            try:
                server = Server(args.url, args.user, args.password)
                return run_import(args.paths, server, args.concurrency)
            except ImportFailed as exc:
                print(f"dicomd import: {exc}", file=sys.stderr)
                return 2
        if args.command == "test-script":
            from .authoring.testscript import main as test_script

            return test_script(args.scripts, args.input, args.config, args.send, args.json)
        if args.command == "replay":
            from .authoring.replay import main as replay

            return replay(
                args.scripts, args.since, args.until, args.config, args.dry_run, args.json
            )
        if args.command == "check-config":
            config = load_config(args.file)
            print(
                f"{args.file}: OK (HTTP port {config.http_port}, storage "
                f"{config.storage_directory})"
            )
            return 0
    except ConfigError as exc:
        print(f"dicomd: configuration error: {exc}", file=sys.stderr)
        return 2
    except (StorageInUse, StartError) as exc:
        print(f"dicomd: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"dicomd: {exc}", file=sys.stderr)
        return 1
    return 2
