"""A Lua callback in progress when the daemon is killed runs again after the restart."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from conftest import wait_for
from dicomfactory import make_dicom

# Notes "start" then waits while the "block" file exists; notes "done" once it finishes.
SCRIPT = """
local folder = GetOrthancConfiguration()['CrashFolder']

local function note(text)
   local file = assert(io.open(folder .. '/calls.txt', 'a'))
   file:write(text .. '\\n')
   file:close()
end

local function blocked()
   local file = io.open(folder .. '/block', 'r')
   if file then file:close() return true end
   return false
end

function OnStoredInstance(instanceId, tags, metadata, origin)
   note('start ' .. instanceId)
   while blocked() do
      os.execute('sleep 0.05')
   end
   note('done ' .. instanceId)
end
"""


@pytest.mark.slow
def test_callback_interrupted_by_sigkill_runs_after_restart(daemon_process, tmp_path: Path):
    folder = tmp_path / "lua"
    folder.mkdir()
    (folder / "script.lua").write_text(SCRIPT)
    (folder / "block").touch()
    calls = folder / "calls.txt"
    proc = daemon_process(LuaScripts=[str(folder / "script.lua")], CrashFolder=str(folder))
    proc.start()
    iid = proc.client().post("/instances", data=make_dicom()).json()["ID"]
    wait_for(lambda: calls.exists() and f"start {iid}" in calls.read_text())
    proc.kill(signal.SIGKILL)
    assert f"done {iid}" not in calls.read_text()
    (folder / "block").unlink()
    proc.start()
    wait_for(lambda: f"done {iid}" in calls.read_text())
    assert calls.read_text().splitlines() == [f"start {iid}", f"start {iid}", f"done {iid}"]
