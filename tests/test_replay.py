"""``dicomd replay``: recorded events delivered again to fixed scripts, on the storage of a
stopped daemon, with and without a dry run."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dicomd.app import Daemon
from dicomd.cli import main as cli
from dicomd.config import load_config
from dicomd.domain.model import Level
from dicomd.errors import ReadOnlyIndex
from dicomd.storage.sqlite_index import SQLiteIndex

from conftest import Client, DaemonProcess, run_dicomd, wait_for, write_config
from dicomfactory import make_series

ROUTED = 1024  # the UserMetadata number of "Routed"

# Meant to mark the CT instances; it compares with the wrong modality, so it never does.
BROKEN_LUA = """
function OnStoredInstance(instanceId, tags, metadata, origin)
   if tags.Modality == 'MR' then
      RestApiPut('/instances/' .. instanceId .. '/metadata/Routed', 'ct')
   end
end
"""
FIXED_LUA = """
function OnStoredInstance(instanceId, tags, metadata, origin)
   if tags.Modality == 'CT' then
      RestApiPut('/instances/' .. instanceId .. '/metadata/Routed', 'ct')
      SendToPeer(instanceId, 'pacs')
   end
end
"""
FIXED_PYTHON = """
import dicomd.script as dicomd


@dicomd.on_stored_instance
def mark_and_send(event: dicomd.Event) -> None:
    dicomd.set_metadata(event.resource_id, "Routed", "pacs")
    dicomd.forward(event.resource_id, "pacs")
"""


@dataclass
class Site:
    """A stopped daemon's configuration and what it stored, in upload order."""

    folder: Path
    config: Path
    instances: list[str]
    seqs: list[int]  # the Seq of each instance's NewInstance event

    def index(self) -> SQLiteIndex:
        return SQLiteIndex(self.folder / "index", read_only=True)

    def snapshot(self) -> dict[str, str]:
        """Every file and folder under the storage and index folders, with its SHA-256."""
        found = {}
        for top in ("storage", "index"):
            for path in sorted((self.folder / top).rglob("*")):
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
                found[str(path.relative_to(self.folder))] = digest
        return found


def record(folder: Path, count: int, **settings: Any) -> Site:
    """Run a daemon, upload ``count`` CT instances of one series, let its handlers see
    every event, and stop it."""
    folder.mkdir()
    config = write_config(
        folder,
        HttpProcesses=1,
        UserMetadata={"Routed": ROUTED},
        OrthancPeers={"pacs": ["http://127.0.0.1:9/"]},
        **settings,
    )
    daemon = Daemon(load_config(config))
    daemon.start()
    try:
        with Client(f"http://127.0.0.1:{daemon.http_port}") as client:
            ids = [client.post("/instances", data=d).json()["ID"] for d in make_series(count)]
            changes = client.get("/changes").json()["Changes"]
        wait_for(lambda: all(h["Backlog"] == 0 for h in daemon.events.status()["Handlers"]))
    finally:
        daemon.stop()
    seqs = {c["ID"]: c["Seq"] for c in changes if c["ChangeType"] == "NewInstance"}
    return Site(folder, config, ids, [seqs[i] for i in ids])


def script(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def replay_process(*args: str) -> subprocess.CompletedProcess[str]:
    return run_dicomd("replay", *args)


def routed(site: Site) -> dict[str, str | None]:
    index = site.index()
    try:
        found = {}
        for instance in site.instances:
            resource = index.get(Level.INSTANCE, instance)
            assert resource is not None
            found[instance] = index.metadata(resource).get(ROUTED)
        return found
    finally:
        index.close()


def positions(site: Site) -> dict[str, int]:
    index = site.index()
    try:
        return index.handler_positions()
    finally:
        index.close()


def test_a_fixed_lua_rule_gets_the_events_of_the_range_only(tmp_path: Path) -> None:
    site = record(tmp_path / "site", 3, LuaScripts=[script(tmp_path, "rule.lua", BROKEN_LUA)])
    assert set(routed(site).values()) == {None}
    before = positions(site)
    fixed = script(tmp_path, "fixed.lua", FIXED_LUA)
    since, until = site.seqs[0], site.seqs[1]  # only the second instance's event is in range
    done = replay_process(
        f"--since={since}", f"--until={until}", "--script", fixed, "--config", str(site.config)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"after Seq {since} up to Seq {until}: {until - since} events" in done.stdout
    assert "lua: 1 delivered, 0 failed" in done.stdout
    assert "(forwards are queued as jobs: they are sent when dicomd next runs)" in done.stdout
    assert positions(site) == before  # the daemon's own delivery is where it was

    # The daemon, started again, has the metadata and the queued forward.
    daemon = Daemon(load_config(site.config))
    daemon.start()
    try:
        with Client(f"http://127.0.0.1:{daemon.http_port}") as client:
            first, second, third = (
                client.get(f"/instances/{i}/metadata/Routed") for i in site.instances
            )
            jobs = client.get("/jobs?expand").json()
    finally:
        daemon.stop()
    assert second.status_code == 200 and second.text == "ct"
    assert first.status_code == third.status_code == 404
    assert [j["Content"]["ParentResources"] for j in jobs] == [[site.instances[1]]]


def test_a_python_rule_acts_and_no_position_is_saved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = record(tmp_path / "site", 2)
    rule = script(tmp_path, "fixed_rule.py", FIXED_PYTHON)
    status = cli(["replay", "--since", "0", "--script", rule, "--config", str(site.config)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "python:fixed_rule: 2 delivered, 0 failed" in out
    assert routed(site) == dict.fromkeys(site.instances, "pacs")
    index = site.index()
    try:
        jobs = index.list_jobs()
        assert "python:fixed_rule" not in index.handler_positions()
    finally:
        index.close()
    assert sorted(j.data["ParentResources"][0] for j in jobs) == sorted(site.instances)
    assert {j.state for j in jobs} == {"Pending"}


def test_events_of_resources_gone_since_are_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = record(tmp_path / "site", 1)
    purge = script(
        tmp_path,
        "purge.py",
        "import dicomd.script as dicomd\n\n\n@dicomd.on_change\ndef purge(event):\n"
        "    if event.type is dicomd.ChangeType.NewInstance:\n"
        "        dicomd.delete(event.resource_id)\n",
    )
    status = cli(["replay", "--since=0", "--script", purge, "--config", str(site.config)])
    out = capsys.readouterr().out
    assert status == 0, out
    # The instance was the only one: its series, study and patient went with it. The
    # Deleted events the replay caused come after the range.
    assert "up to Seq 4: 4 events" in out
    assert "python:purge: 1 delivered, 0 failed" in out
    skipped = out.split("Skipped (3):\n")[1].splitlines()[:3]
    assert [line.split()[2] for line in skipped] == ["NewSeries", "NewStudy", "NewPatient"]
    assert all(line.endswith(": no longer stored") for line in skipped)


def test_a_dry_run_lists_the_actions_and_changes_not_a_byte(tmp_path: Path) -> None:
    site = record(tmp_path / "site", 2, LuaScripts=[script(tmp_path, "rule.lua", BROKEN_LUA)])
    before = site.snapshot()
    assert any(name.endswith("dicomd-index.sqlite") for name in before)
    done = replay_process(
        "--since=0",
        "--script",
        script(tmp_path, "fixed.lua", FIXED_LUA),
        "--script",
        script(tmp_path, "fixed_rule.py", FIXED_PYTHON),
        "--config",
        str(site.config),
        "--dry-run",
        "--json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["DryRun"] and report["Errors"] == [] and report["Skipped"] == []
    assert {h["Name"]: h["Delivered"] for h in report["Handlers"]} == {
        "lua": 2,
        "python:fixed_rule": 2,
    }
    kinds = sorted((a["Origin"], a["Kind"]) for a in report["Actions"])
    assert kinds == sorted(
        [("Lua", "rest"), ("Lua", "forward"), ("Plugins", "set-metadata"), ("Plugins", "forward")]
        * 2
    )
    assert not any(a["Executed"] for a in report["Actions"])
    assert site.snapshot() == before
    index = site.index()  # as the dry run opened it: a stray write would fail, not land
    try:
        with pytest.raises(ReadOnlyIndex):
            index.save_handler_positions({"lua": 0})
    finally:
        index.close()
    assert site.snapshot() == before


def test_a_script_error_names_the_file_and_line_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = record(tmp_path / "site", 1)
    lua = script(
        tmp_path,
        "broken.lua",
        "function OnStoredInstance(id, tags, metadata, origin)\n"
        "  local x = nil\n  print(x.y)\nend\n",
    )
    python = script(
        tmp_path,
        "broken_rule.py",
        "import dicomd.script as dicomd\n\n\n@dicomd.on_stored_instance\n"
        "def divide(event):\n    return 1 / 0\n",
    )
    status = cli(
        ["replay", "--since=0", "--script", lua, "--script", python, "--config", str(site.config)]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "Errors (2):" in out  # the Python error, also logged by its engine, is listed once
    assert "broken.lua:3: attempt to index a nil value" in out
    assert f"{python}:6 in divide: ZeroDivisionError: division by zero" in out
    assert "lua: 0 delivered, 1 failed" in out


def test_a_store_in_use_or_not_closed_cleanly_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rule = script(tmp_path, "fixed.lua", FIXED_LUA)
    running = DaemonProcess(
        tmp_path,
        HttpProcesses=1,
        UserMetadata={"Routed": ROUTED},
        OrthancPeers={"pacs": ["http://127.0.0.1:9/"]},
    ).start()
    try:
        with running.client() as client:
            client.post("/instances", data=make_series(1)[0]).raise_for_status()
        args = ["replay", "--since=0", "--script", rule, "--config", str(running.config_path)]
        assert cli(args) == 2
        error = capsys.readouterr().err
        assert "another dicomd is using" in error and "stop it first" in error
        assert "or replay on a copy of its storage and index folders" in error
    finally:
        running.kill(signal.SIGKILL)
    assert cli([*args, "--dry-run"]) == 2
    assert "was not closed cleanly" in capsys.readouterr().err
    assert cli(args) == 0  # without --dry-run the replay repairs the storage as dicomd would
    assert "lua: 1 delivered, 0 failed" in capsys.readouterr().out
    assert cli([*args, "--config", str(tmp_path / "elsewhere.json")]) == 2
    assert "cannot read configuration file" in capsys.readouterr().err
