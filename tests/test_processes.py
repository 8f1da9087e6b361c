"""Several processes serve the REST API: they share the work, die with the main process,
stop with it, and two daemons never share one storage. With several, the main process
serves no HTTP itself: it holds the port and runs the background work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import alive, children_of, wait_for
from dicomfactory import make_series


def upload_concurrently(client_factory, files: list[bytes], clients: int = 4) -> list[dict]:
    answers: list[dict] = []
    lock = threading.Lock()
    cursor = iter(files)

    def loop() -> None:
        session = client_factory()
        while True:
            with lock:
                data = next(cursor, None)
            if data is None:
                return
            answer = session.post("/instances", data=data).json()
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


@pytest.mark.slow
def test_helpers_serve_and_stop_with_sigterm(daemon_process) -> None:
    proc = daemon_process(HttpProcesses=3).start()
    assert proc.proc is not None
    helpers = children_of(proc.proc.pid)
    assert len(helpers) == 3 and all(alive(p) for p in helpers)
    files = make_series(40)
    answers = upload_concurrently(proc.client, files, clients=6)
    assert sorted(a["Status"] for a in answers) == ["Success"] * 40
    client = proc.client()
    assert client.get("/statistics").json()["CountInstances"] == 40
    stored = {client.get(f"/instances/{a['ID']}/file").content for a in answers}
    assert stored == set(files)
    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(timeout=15) == 0
    assert time.monotonic() - started < 10
    wait_for(lambda: not any(alive(p) for p in helpers), timeout=5)
    log = proc.log_path.read_text()
    assert "exited with status" not in log and "did not stop" not in log, log
    assert "Traceback" not in log and "Errno" not in log, log


@pytest.mark.slow
def test_helpers_die_with_a_killed_main_process(daemon_process) -> None:
    proc = daemon_process(HttpProcesses=2).start()
    assert proc.proc is not None
    helpers = children_of(proc.proc.pid)
    assert len(helpers) == 2
    proc.kill()  # SIGKILL: no chance to stop the helpers itself
    wait_for(lambda: not any(alive(p) for p in helpers), timeout=10)
    # and the storage is usable again at once
    proc.start()
    assert proc.client().get("/statistics").status_code == 200


@pytest.mark.slow
def test_a_second_daemon_on_the_same_storage_is_refused(daemon_process) -> None:
    first = daemon_process(HttpProcesses=1).start()
    run = subprocess.run(
        [sys.executable, "-m", "dicomd", "serve", "--config", str(first.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert run.returncode != 0
    assert "another dicomd is using" in run.stderr
    assert first.client().get("/system").status_code == 200


@pytest.mark.slow
def test_a_helper_that_dies_is_started_again(daemon_process) -> None:
    proc = daemon_process(HttpProcesses=2).start()
    assert proc.proc is not None
    # /system answers once one helper listens; the daemon has started when both do (a
    # helper that dies before that makes the start fail, as it should).
    wait_for(lambda: "dicomd listening on" in proc.log_path.read_text(), timeout=30)
    helpers = children_of(proc.proc.pid)
    assert len(helpers) == 2
    os.kill(helpers[0], signal.SIGKILL)
    replaced = wait_for(
        lambda: (
            (kids := children_of(proc.proc.pid))
            and len(kids) == 2
            and helpers[0] not in kids
            and kids
        ),
        timeout=20,
    )
    assert helpers[1] in replaced
    # The new helper serves: every connection of a few clients gets answers.
    files = make_series(12)
    answers = upload_concurrently(proc.client, files, clients=4)
    assert sorted(a["Status"] for a in answers) == ["Success"] * 12
    log = proc.log_path.read_text()
    assert f"helper process {helpers[0]} exited with status -9; starting another" in log, log
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(timeout=15) == 0
    wait_for(lambda: not any(alive(p) for p in replaced), timeout=5)


def test_clients_uploading_back_to_back_do_not_hold_up_a_stop(daemon_process) -> None:
    """A worker serves a keep-alive connection's next request itself; a stop still ends
    the serving promptly while clients keep sending."""
    proc = daemon_process(HttpProcesses=2).start()
    assert proc.proc is not None
    files = make_series(400)
    stop_sending = threading.Event()
    answered: list[int] = []

    def send() -> None:
        session = requests.Session()
        for data in files:
            if stop_sending.is_set():
                return
            try:
                answered.append(session.post(proc.url + "/instances", data=data).status_code)
            except requests.RequestException:
                return  # the daemon stopped under it

    senders = [threading.Thread(target=send) for _ in range(4)]
    for sender in senders:
        sender.start()
    wait_for(lambda: len(answered) >= 20, timeout=30)
    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(timeout=15) == 0
    stopped_in = time.monotonic() - started
    stop_sending.set()
    for sender in senders:
        sender.join()
    assert set(answered) == {200}
    # Within cheroot's 5 s for its workers to finish (0.2 s measured).
    assert stopped_in < 5, stopped_in
