"""Advisory file locks (``flock``) shared by the processes of one daemon."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


class FileLock:
    """An ``flock`` on one file. Blocking waits release the GIL; the lock dies with the
    process, so a killed daemon never leaves a stale lock behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def exclusive(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def shared(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def try_exclusive(self, timeout: float) -> bool:
        """Take the lock exclusively, waiting at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)
