"""Keeping the HTTP processes' shares of keep-alive connections even.

Each process of the daemon binds its own socket to the port (``SO_REUSEPORT``) and the kernel
picks one for each new connection by a hash of its addresses. With the few long-lived
keep-alive connections a client or peer typically opens, that is often uneven: 4 clients on
2 processes land 3 and 1 half of the time and 4 and 0 one time in eight, and a process
holding every connection is held to one core by Python's GIL while the other sits idle.

So each process counts its busy connections in a small file shared by the daemon's
processes: one slot per process, written only by its owner, holding its pid while it
listens and its number of busy connections. A process holding more than its share (the
connections of the live processes divided by their number, rounded up) answers its next
request with ``Connection: close``: the client reconnects, as HTTP clients do, and the
kernel places the new connection afresh. A few reconnections even the shares out. A
process that is not listening yet, or no longer (stopped, killed), has no share.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import threading
import time
from pathlib import Path

_SLOT = struct.Struct("<qq")  # pid (0: not listening), busy connections
FILE_NAME = "dicomd-http-connections"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ConnectionShares:
    """This process's view of the busy connections of every process.

    A connection is busy while it carries a request and for ``BUSY_SECONDS`` after: a
    client's idle keep-alive connections do not count, they would hide an uneven spread of
    the busy ones (a client that checks the server once before its uploads keeps that
    connection open, idle). The window is short, since a whole upload of a thousand files
    can take a few seconds; a long request counts as long as it lasts.

    ``slot`` is this process's place (0 for the main process); the main process creates the
    file (``create``), empty, before it starts the others. A process counts in the shares
    from :meth:`listening` to :meth:`close`."""

    BUSY_SECONDS = 0.5

    def __init__(self, folder: Path, processes: int, slot: int, create: bool = False) -> None:
        if not 0 <= slot < processes:
            raise ValueError(f"slot {slot} out of {processes} processes")
        self.processes = processes
        self.slot = slot
        size = processes * _SLOT.size
        fd = os.open(folder / FILE_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if create:
                os.ftruncate(fd, 0)  # forget what a killed daemon left
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self._lock = threading.Lock()
        self._pid = 0
        self._last_request: dict[int, float] = {}  # connection -> time of its last request
        self._in_request: set[int] = set()  # connections carrying a request now
        self._leaving: set[int] = set()  # connections told to close, not closed yet
        self._stopping = threading.Event()
        self._refresher: threading.Thread | None = None

    def listening(self) -> None:
        """This process accepts connections from now on: it has a share. Its count is
        refreshed every second, so that its connections that fell idle stop counting."""
        with self._lock:
            self._pid = os.getpid()
            self._publish()
        self._refresher = threading.Thread(
            target=self._refresh, name="dicomd-connection-shares", daemon=True
        )
        self._refresher.start()

    def _refresh(self) -> None:
        while not self._stopping.wait(self.BUSY_SECONDS / 2):
            with self._lock:
                self._publish(self._busy(time.monotonic()))

    def _busy(self, now: float) -> int:
        since = now - self.BUSY_SECONDS
        return sum(
            1
            for connection, t in self._last_request.items()
            if t >= since or connection in self._in_request
        )

    def request_started(self, connection: int) -> None:
        """``connection`` carries a request from now until :meth:`request_ended`."""
        with self._lock:
            self._in_request.add(connection)
            self._last_request[connection] = time.monotonic()

    def request_ended(self, connection: int) -> None:
        with self._lock:
            self._in_request.discard(connection)
            if connection in self._last_request:
                self._last_request[connection] = time.monotonic()

    def _publish(self, busy: int = 0) -> None:
        if self._map.closed:
            return  # a connection closing after the server stopped
        _SLOT.pack_into(self._map, self.slot * _SLOT.size, self._pid, busy)

    def served(self, connection: int) -> bool:
        """A request of ``connection`` is being answered: whether the connection should
        then close (it is counted as leaving until it has), because this process has more
        than its share of the busy connections."""
        now = time.monotonic()
        with self._lock:
            if self._map.closed or not self._pid:
                return False
            self._last_request[connection] = now
            busy = self._busy(now)
            self._publish(busy)
            if connection in self._leaving:
                return True
            staying = busy - len(self._leaving)
            if staying <= self._share(busy, check_alive=False) or staying <= self._share(
                busy, check_alive=True
            ):
                return False
            self._leaving.add(connection)
            return True

    def _share(self, busy: int, check_alive: bool) -> int:
        """The busy connections of the processes listening, divided by their number and
        rounded up; the processes really there only if ``check_alive`` (one that was
        killed keeps its slot), so that no client is sent off to a process that is gone."""
        others = [
            _SLOT.unpack_from(self._map, i * _SLOT.size)
            for i in range(self.processes)
            if i != self.slot
        ]
        # Connections told to leave still count: their clients come back.
        counts = [n for pid, n in others if pid and (not check_alive or _alive(pid))]
        return math.ceil((busy + sum(max(n, 0) for n in counts)) / (len(counts) + 1))

    def closed(self, connection: int) -> None:
        with self._lock:
            self._last_request.pop(connection, None)
            self._in_request.discard(connection)
            self._leaving.discard(connection)
            self._publish(self._busy(time.monotonic()))

    def listening_processes(self) -> int:
        """How many processes are listening now (alive, between :meth:`listening` and
        :meth:`close`)."""
        with self._lock:
            if self._map.closed:
                return 0
            slots = [_SLOT.unpack_from(self._map, i * _SLOT.size) for i in range(self.processes)]
        return sum(1 for pid, _ in slots if pid and _alive(pid))

    def close(self) -> None:
        """This process stops listening: it has no share any more."""
        self._stopping.set()
        if self._refresher is not None:
            self._refresher.join()
        with self._lock:
            self._pid = 0
            self._last_request.clear()
            self._in_request.clear()
            self._publish()
            self._map.close()
