"""The daemon's HTTP processes keep even shares of keep-alive connections: a process with
more than its share asks a client to reconnect, and the kernel places the new connection
afresh."""

from __future__ import annotations

import http.client
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomd.rest.balance import FILE_NAME, ConnectionShares


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[ConnectionShares, ConnectionShares]]:
    """The shares of a main process and a helper, both listening, with a short busy
    window (0.2 s)."""
    main = ConnectionShares(tmp_path, 2, 0, create=True)
    helper = ConnectionShares(tmp_path, 2, 1)
    main.BUSY_SECONDS = helper.BUSY_SECONDS = 0.2
    main.listening()
    helper.listening()
    try:
        yield main, helper
    finally:
        main.close()
        helper.close()


def test_a_process_over_its_share_lets_busy_connections_go(tmp_path: Path) -> None:
    main = ConnectionShares(tmp_path, 2, 0, create=True)
    helper = ConnectionShares(tmp_path, 2, 1)
    main.listening()
    helper.listening()
    try:
        # Busy connections, all on main: each over the share (half the total) must go.
        assert [main.served(c) for c in (1, 2, 3, 4)] == [False, True, False, True]
        assert main.served(2)  # told once, it stays told until it closes
        assert not main.served(1)
        # 4 busy, 2 leaving: the 2 others stay, whatever comes.
        assert not main.served(3)
        main.closed(2)
        assert not helper.served(5)  # its client reconnected and landed on the helper
        main.closed(4)
        assert main.served(6)  # the other landed on main again: 3 against 1
        main.closed(6)
        assert not helper.served(7)
        assert [main.served(c) for c in (1, 3)] == [False, False]  # even: 2 and 2
    finally:
        main.close()
        helper.close()


def test_idle_connections_have_no_weight(pair) -> None:
    main, helper = pair
    assert not helper.served(1)  # a connection that then stays idle
    time.sleep(0.3)
    # 2 busy on main, 0 busy on the helper: one of main's should go.
    assert [main.served(c) for c in (2, 3)] == [False, True]


def test_a_long_request_keeps_its_connection_busy(pair) -> None:
    main, helper = pair
    helper.request_started(1)  # a large upload, still arriving after the busy window
    time.sleep(0.3)
    # 2 busy on main, 1 busy on the helper: 3 in all, main is within its share of 2.
    assert [main.served(c) for c in (2, 3)] == [False, False]
    helper.request_ended(1)
    time.sleep(0.3)
    # Once the upload is over and the window gone, the helper holds nothing busy.
    assert [main.served(c) for c in (2, 3)] == [False, True]


def test_only_processes_listening_have_a_share(tmp_path: Path) -> None:
    # Left by a killed daemon: a process that is gone, holding 9 connections.
    (tmp_path / FILE_NAME).write_bytes(struct.pack("<qqqq", 1, 3, 999_999_999, 9))
    main = ConnectionShares(tmp_path, 2, 0, create=True)
    helper = ConnectionShares(tmp_path, 2, 1)
    try:
        main.listening()
        # The helper is not listening yet: main keeps both connections.
        assert [main.served(c) for c in (1, 2)] == [False, False]
        helper.listening()
        assert main.served(1)  # 2 against 0
        main.closed(1)
        helper.close()  # stopped: main keeps what it has
        assert [main.served(c) for c in (2, 3)] == [False, False]
    finally:
        main.close()


def test_a_killed_process_has_no_share(tmp_path: Path) -> None:
    main = ConnectionShares(tmp_path, 2, 0, create=True)
    main.listening()
    try:
        # What a helper killed with SIGKILL leaves: its pid and no busy connection.
        with open(tmp_path / FILE_NAME, "r+b") as file:
            file.seek(16)
            file.write(struct.pack("<qq", 999_999_999, 0))
        assert [main.served(c) for c in (1, 2)] == [False, False]
    finally:
        main.close()


def slots(index: Path, processes: int) -> list[int]:
    data = (index / FILE_NAME).read_bytes()
    return [struct.unpack_from("<qq", data, 16 * i)[1] for i in range(processes)]


@pytest.mark.slow
def test_keep_alive_connections_end_evenly_spread(daemon_process) -> None:
    # Two processes serve HTTP (slots 1 and 2); the main one (slot 0) serves none.
    proc = daemon_process(HttpProcesses=2).start()
    index = proc.folder / "index"
    connections = [http.client.HTTPConnection("127.0.0.1", proc.port) for _ in range(4)]
    reconnects = 0
    try:
        for _round in range(100):
            for conn in connections:
                conn.request("GET", "/system")
                response = conn.getresponse()
                assert response.status == 200
                response.read()
                if response.getheader("Connection", "").lower() == "close":
                    reconnects += 1
                    conn.close()  # the next request opens a new connection
            if slots(index, 3)[1:] == [2, 2]:
                break
        assert slots(index, 3)[1:] == [2, 2], proc.log_path.read_text()[-3000:]
        # Once even, nobody is asked to leave any more.
        before = reconnects
        for conn in connections:
            conn.request("GET", "/system")
            response = conn.getresponse()
            response.read()
            assert response.getheader("Connection", "").lower() != "close"
        assert reconnects == before
    finally:
        for conn in connections:
            conn.close()
