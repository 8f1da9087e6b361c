"""A dicomd with N no-op event handlers, for the event benchmark (``events.py``).

    python benchmarks/noop_daemon.py CONFIG [--handlers N] [--name PREFIX] [--from-start]
                                            [--probe FILE]

Runs the daemon of the checkout (put ``daemon/`` first on ``PYTHONPATH``) as ``dicomd serve``
does, with N handlers named ``noop-1`` ... ``noop-N`` registered before the start, each
wanting every event and doing nothing with it: what delivery itself costs, since scripting
(Lua, Python) does not exist yet. ``--handlers 0`` is plain ``dicomd serve``.

- ``--name PREFIX`` changes the prefix of the handlers' names.
- ``--from-start``: handlers never seen before start at the beginning of the log instead of
  its end, to time a catch-up (delivery of everything already stored, no upload running).
- ``--probe FILE``: one more handler, ``probe``, wants only the Stable* events and appends a
  line per event, "wall-time type level id", to FILE: when a handler inside the daemon sees
  them.

SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from dicomd.app import Daemon
from dicomd.config import load_config
from dicomd.events.handlers import STABLE_TYPES, Event, FunctionHandler


def noop(_event: Event) -> None:
    """Receives an event and does nothing with it."""


def probe_handler(path: Path) -> FunctionHandler:
    def record(event: Event) -> None:
        line = f"{time.time():.6f} {event.type.name} {event.level.title} {event.resource_id}\n"
        with open(path, "a") as f:
            f.write(line)

    return FunctionHandler("probe", record, STABLE_TYPES)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("config", type=Path)
    ap.add_argument("--handlers", type=int, default=1, help="no-op handlers to register")
    ap.add_argument("--name", default="noop", help="prefix of the handlers' names")
    ap.add_argument(
        "--from-start", action="store_true", help="new handlers start at the log's beginning"
    )
    ap.add_argument("--probe", type=Path, help="record when a handler sees Stable* events")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    # As `dicomd serve` does (see dicomd.cli._tune_for_uploads), so that the uploads run
    # as fast as under the real command and the comparison with 0 handlers is fair.
    sys.setswitchinterval(0.001)
    daemon = Daemon(load_config(args.config))
    names = [f"{args.name}-{i}" for i in range(1, args.handlers + 1)]
    if args.from_start:
        known = daemon.index.handler_positions()
        daemon.index.save_handler_positions({n: 0 for n in names if n not in known})
    for name in names:
        daemon.events.register(FunctionHandler(name, noop))
    if args.probe:
        daemon.events.register(probe_handler(args.probe))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        daemon.start()
        stopping.wait()
    finally:
        daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
