"""A daemon with one event handler that appends each event it handles to a file, for tests
that kill a daemon in the middle of delivering events.

    python event_recorder.py CONFIG OUTPUT [SLOW_SECONDS]

Each handled event is written (and fsynced) as one line "seq type level id" (level "Job"
for a job event); with SLOW_SECONDS, the handler takes that long per event, so that a test
can kill it midway.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from dicomd.app import Daemon
from dicomd.config import load_config
from dicomd.events.handlers import Event, FunctionHandler


def main() -> None:
    config = load_config(Path(sys.argv[1]))
    output = Path(sys.argv[2])
    slow = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    daemon = Daemon(config)

    def record(event: Event) -> None:
        time.sleep(slow)
        level = event.level.title if event.level is not None else "Job"
        line = f"{event.seq} {event.type.name} {level} {event.resource_id}\n"
        with open(output, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    daemon.events.register(FunctionHandler("recorder", record))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    daemon.start()
    stopping.wait()
    daemon.stop()


if __name__ == "__main__":
    main()
