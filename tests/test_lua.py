"""Lua scripting on a real daemon with real Lua: callbacks and their arguments, built-in
functions, filters, error isolation, hot reload and /tools/execute-script."""

from __future__ import annotations

import base64
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dicomd.app import Daemon
from dicomd.config import load_config

from conftest import Client, wait_for, write_config
from dicomfactory import make_dicom, make_series

# Appends one JSON line per callback to the file of the "LuaLog" configuration key.
RECORDER = """
local logPath = GetOrthancConfiguration()['LuaLog']
function record(name, ...)
   local file = assert(io.open(logPath, 'a'))
   file:write(DumpJson({ name = name, args = { ... } }, true) .. '\\n')
   file:close()
end
"""


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def named(path: Path, name: str) -> list[list[Any]]:
    return [r["args"] for r in records(path) if r["name"] == name]


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from dicomd.events.delivery import _Worker

    monkeypatch.setattr(_Worker, "RETRY_DELAYS", (0.05, 0.05))


def script(tmp_path: Path, text: str, name: str = "script.lua") -> Path:
    path = tmp_path / name
    path.write_text(RECORDER + text)
    return path


CALLBACKS = """
function Initialize() record('Initialize') end
function Finalize() record('Finalize') end
function OnStoredInstance(id, tags, metadata, origin)
   record('OnStoredInstance', id, tags, metadata, origin)
end
function OnStableSeries(id, tags, metadata) record('OnStableSeries', id, tags, metadata) end
function OnStableStudy(id, tags, metadata) record('OnStableStudy', id, tags, metadata) end
function OnStablePatient(id, tags, metadata) record('OnStablePatient', id, tags, metadata) end
function OnUpdatedInstance(id) record('OnUpdatedInstance', id) end
function OnUpdatedStudy(id) record('OnUpdatedStudy', id) end
function OnDeletedInstance(id) record('OnDeletedInstance', id) end
function OnDeletedSeries(id) record('OnDeletedSeries', id) end
function OnDeletedStudy(id) record('OnDeletedStudy', id) end
function OnDeletedPatient(id) record('OnDeletedPatient', id) end
function OnHeartBeat() record('OnHeartBeat') end
"""


def test_callbacks_fire_with_orthanc_arguments(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    settings = {
        "LuaScripts": [str(script(tmp_path, CALLBACKS))],
        "LuaLog": str(log),
        "StableAge": 1,
        "LuaHeartBeatPeriod": 1,
        "UserMetadata": {"Sample": 1024},
        "HttpProcesses": 1,
    }
    daemon = Daemon(load_config(write_config(tmp_path, **settings)))
    daemon.start()  # stopped by the test itself, to see Finalize
    try:
        check_callbacks(Client(f"http://127.0.0.1:{daemon.http_port}"), log)
    finally:
        daemon.stop()
    assert named(log, "Finalize") == [[]]


def check_callbacks(client: Client, log: Path) -> None:
    assert named(log, "Initialize") == [[]]
    stored = client.post("/instances", data=make_dicom(patient_id="P1")).json()
    iid = stored["ID"]
    (args,) = wait_for(lambda: named(log, "OnStoredInstance"))
    assert args[0] == iid
    assert args[1]["PatientID"] == "P1" and args[1]["Modality"] == "CT"
    assert args[2]["Origin"] == "RestApi" and args[2]["RemoteIP"] == "127.0.0.1"
    assert args[3] == {"RequestOrigin": "RestApi", "RemoteIp": "127.0.0.1", "Username": ""}
    (series,) = wait_for(lambda: named(log, "OnStableSeries"))
    assert series[0] == stored["ParentSeries"] and series[1]["Modality"] == "CT"
    assert "LastUpdate" in series[2]
    (study,) = wait_for(lambda: named(log, "OnStableStudy"))
    assert study[0] == stored["ParentStudy"] and study[1]["AccessionNumber"] == "ACC1"
    (patient,) = wait_for(lambda: named(log, "OnStablePatient"))
    assert patient[0] == stored["ParentPatient"] and patient[1]["PatientID"] == "P1"
    client.put(f"/instances/{iid}/metadata/Sample", data="x")
    client.put(f"/studies/{stored['ParentStudy']}/metadata/Sample", data="y")
    assert wait_for(lambda: named(log, "OnUpdatedInstance")) == [[iid]]
    assert wait_for(lambda: named(log, "OnUpdatedStudy")) == [[stored["ParentStudy"]]]
    client.delete(f"/patients/{stored['ParentPatient']}")
    for level, key in (
        ("Instance", "ID"),
        ("Series", "ParentSeries"),
        ("Study", "ParentStudy"),
        ("Patient", "ParentPatient"),
    ):
        assert wait_for(lambda level=level: named(log, f"OnDeleted{level}")) == [[stored[key]]]
    wait_for(lambda: named(log, "OnHeartBeat"), timeout=5)
    assert named(log, "Finalize") == []


FUNCTIONS = """
function OnStoredInstance(id, tags, metadata, origin)
   local system = ParseJson(RestApiGet('/system'))
   RestApiPut('/instances/' .. id .. '/metadata/Sample', system['Name'])
end
"""


class Recorder(BaseHTTPRequestHandler):
    """A small web service: answers the method and path, and 404 under /missing."""

    seen: list[dict[str, Any]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        self.seen.append(
            {"method": self.command, "path": self.path, "body": body, "headers": dict(self.headers)}
        )
        if self.path.startswith("/slow"):
            time.sleep(1)
        status = 404 if self.path.startswith("/missing") else 200
        data = f"{self.command} {self.path} {body}".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web_service() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server in a thread: its URL and the requests it received."""
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.daemon_threads = False  # so that server_close() waits for them
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Recorder.seen
    server.shutdown()
    server.server_close()
    thread.join()


def run(client: Any, code: str) -> str:
    answer = client.post("/tools/execute-script", data=code)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    return str(answer.text)


def test_rest_api_functions(make_daemon, tmp_path: Path) -> None:
    daemon, client = make_daemon(
        LuaScripts=[str(script(tmp_path, FUNCTIONS))],
        ExecuteLuaEnabled=True,
        UserMetadata={"Sample": 1024},
    )
    iid = client.post("/instances", data=make_dicom()).json()["ID"]
    wait_for(lambda: client.get(f"/instances/{iid}/metadata/Sample").text == "dicomd")
    out = run(
        client,
        f"""
        print(RestApiGet('/nope'))
        print(ParseJson(RestApiGet('/instances/{iid}'))['ID'])
        print(RestApiPost('/instances/{iid}/metadata/Sample', 'x'))
        print(RestApiPut('/instances/{iid}/metadata/Sample', 'lua'))
        print(RestApiGet('/instances/{iid}/metadata/Sample', true))
        print(string.sub(RestApiGet('/instances/{iid}/file'), 129, 132))
        print(RestApiGet('/system', false, {{ ['X-Test'] = 'yes' }}) ~= nil)
        print(RestApiDelete('/instances/{iid}'))
        print(RestApiDelete('/instances/{iid}'))
        """,
    )
    assert out.splitlines() == ["nil", iid, "nil", "", "lua", "DICM", "true", "true", "nil"]


def test_http_functions(make_daemon, web_service) -> None:
    url, seen = web_service
    _daemon, client = make_daemon(ExecuteLuaEnabled=True)
    out = run(
        client,
        f"""
        print(HttpGet('{url}/a'))
        print(HttpGet('{url}/missing'))
        SetHttpCredentials('alice', 'secret')
        print(HttpPost('{url}/b', 'hello', {{ ['X-Custom'] = 'Value' }}))
        print(HttpPut('{url}/c'))
        print(HttpDelete('{url}/d'))
        print(HttpDelete('{url}/missing'))
        print(HttpGet('http://127.0.0.1:1/refused'))
        SetHttpTimeout(0.5)
        print(HttpGet('{url}/slow'))
        """,
    )
    assert out.splitlines() == [
        "GET /a ",
        "GET /missing ",
        "POST /b hello",
        "PUT /c ",
        "SUCCESS",
        "nil",
        "nil",
        "nil",
    ]
    post = next(s for s in seen if s["path"] == "/b")
    assert post["headers"]["X-Custom"] == "Value"
    assert post["headers"]["Authorization"] == "Basic " + base64.b64encode(b"alice:secret").decode()
    assert "Authorization" not in next(s for s in seen if s["path"] == "/a")["headers"]


def test_values_and_toolbox(make_daemon, tmp_path: Path) -> None:
    daemon, client = make_daemon(
        ExecuteLuaEnabled=True, StableAge=30, UserMetadata={"Sample": 1024}
    )
    stored = client.post("/instances", data=make_dicom()).json()
    out = run(
        client,
        f"""
        print(DumpJson(ParseJson('{{"a":[1,2.5,{{}}],"b":null,"c":"12","d":true}}')))
        print(DumpJson({{ n = '0012', e = {{}} }}, true))
        print(DumpJson({{ n = '0012' }}))
        print(ParseJson('not json'))
        PrintRecursive({{ 'x' }})
        print(unpack({{ 'u', 'v' }}))
        print(table.getn({{ 1, 2, 3 }}), math.pow(2, 3), loadstring('return 7')())
        print(GetOrthancConfiguration()['StableAge'])
        print(SetStableStatus('{stored["ParentSeries"]}', true))
        print(SetStableStatus('{stored["ParentSeries"]}', true))
        print(pcall(SendToModality, '{stored["ID"]}', 'sample'))
        print(pcall(ModifyInstance, '{stored["ID"]}', {{}}, {{}}, true))
        print(pcall(Delete, nil))
        print(python)
        """,
    )
    lines = out.splitlines()
    assert json.loads(lines[0]) == {"a": [1, 2.5, []], "c": 12, "d": True}
    assert json.loads(lines[1]) == {"n": "0012", "e": []}
    assert json.loads(lines[2]) == {"n": 12}
    assert lines[3:8] == ["nil", "table", "\t[1], string, x", "u, v", "3, 8.0, 7"]
    assert lines[8:11] == ["30", "true", "false"]
    assert "SendToModality is not supported yet" in lines[11]
    assert "ModifyInstance is not supported yet" in lines[12]
    assert "nonexistent resource" in lines[13]
    assert lines[14] == "nil"
    assert client.get(f"/series/{stored['ParentSeries']}").json()["IsStable"] is True


def test_call_system_and_delete(make_daemon, tmp_path: Path) -> None:
    _daemon, client = make_daemon(ExecuteLuaEnabled=True)
    copy = tmp_path / "copy.dcm"
    first = client.post("/instances", data=make_dicom(patient_id="A")).json()["ID"]
    second = client.post("/instances", data=make_dicom(patient_id="B")).json()["ID"]
    code = f"import shutil, sys; shutil.copy(sys.argv[1], {str(copy)!r})"
    run(
        client,
        f"CallSystem('{first}', {json.dumps(sys.executable)}, {{ '-c', {json.dumps(code)} }})\n"
        f"Delete('{second}')",
    )
    assert copy.read_bytes()[128:132] == b"DICM"
    assert [i for i in client.get("/instances").json()] == [first]


def test_execute_script_is_off_by_default(make_daemon) -> None:
    _daemon, client = make_daemon()
    assert client.post("/tools/execute-script", data="print(1)").status_code == 403


def test_execute_script_error(make_daemon) -> None:
    _daemon, client = make_daemon(ExecuteLuaEnabled=True)
    answer = client.post("/tools/execute-script", data="local x = 1\nerror('boom')")
    assert answer.status_code == 500
    assert answer.json()["OrthancError"] == "Cannot execute a Lua command"
    assert "execute-script:2: boom" in answer.json()["Details"]


FILTERS = """
function ReceivedInstanceFilter(dicom, origin, info)
   record('ReceivedInstanceFilter', dicom['PatientID'], origin, info)
   if dicom['PatientID'] == 'NOT-BOOLEAN' then return 'yes' end
   return dicom['PatientID'] ~= 'REJECT'
end
function IncomingHttpRequestFilter(method, uri, ip, username, headers)
   if uri == '/tools/execute-script' then return true end
   record('IncomingHttpRequestFilter', method, uri, ip, username, headers['x-who'])
   return method ~= 'DELETE' or fromMain ~= nil
end
"""


def test_filters(make_daemon, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    _daemon, client = make_daemon(
        LuaScripts=[str(script(tmp_path, FILTERS))], LuaLog=str(log), ExecuteLuaEnabled=True
    )
    refused = client.post("/instances", data=make_dicom(patient_id="REJECT"))
    assert refused.status_code == 200 and refused.json()["Status"] == "FilteredOut"
    assert client.get("/instances").json() == []
    kept = client.post("/instances", data=make_dicom(patient_id="KEEP")).json()
    assert kept["Status"] == "Success"
    # A filter that does not answer a boolean is an error: logged, and the instance is kept.
    odd = client.post("/instances", data=make_dicom(patient_id="NOT-BOOLEAN")).json()
    assert odd["Status"] == "Success"
    first = named(log, "ReceivedInstanceFilter")[0]
    assert first[1] == {"RequestOrigin": "RestApi", "RemoteIp": "127.0.0.1", "Username": ""}
    assert first[2] == {"HasPixelData": True, "TransferSyntaxUID": "1.2.840.10008.1.2.1"}
    assert client.delete(f"/instances/{kept['ID']}", headers={"X-Who": "me"}).status_code == 403
    calls = named(log, "IncomingHttpRequestFilter")
    assert ["DELETE", f"/instances/{kept['ID']}", "127.0.0.1", "", "me"] in calls
    # The two runtimes do not share globals, as in Orthanc.
    run(client, "fromMain = true")
    assert client.delete(f"/instances/{kept['ID']}").status_code == 403


LAZY_TAGS = """
function OnStoredInstance(id, tags, metadata, origin)
   if origin['RequestOrigin'] == 'Lua' then return end
   local counted = 0
   for name, value in pairs(tags) do counted = counted + 1 end
   tags.Added = 'yes'
   local kept = { instance = tags }
   record('OnStoredInstance', id, counted, tags['PatientID'], tags.Modality)
   record('Dumped', ParseJson(DumpJson(kept, true)).instance)
   record('Untouched', id)
end
function OnStableSeries(id, tags, metadata)
   -- A callback that never reads its tags.
   record('Series', id)
end
"""


def test_instance_tags_are_fetched_when_read(make_daemon, tmp_path: Path) -> None:
    """A stored instance's tags are read from its file only when the script uses them,
    and then behave as a plain table: indexing, pairs, assignment, DumpJson inside
    another table."""
    log = tmp_path / "calls.jsonl"
    _daemon, client = make_daemon(
        LuaScripts=[str(script(tmp_path, LAZY_TAGS))], LuaLog=str(log), StableAge=1
    )
    stored = client.post("/instances", data=make_dicom(patient_id="LAZY")).json()
    simplified = client.get(f"/instances/{stored['ID']}/simplified-tags").json()
    # As in Orthanc, a null value (an empty tag) is nil in Lua: the key is absent.
    simplified = {k: v for k, v in simplified.items() if v is not None}
    ((iid, counted, patient, modality),) = wait_for(lambda: named(log, "OnStoredInstance"))
    assert (iid, counted, patient, modality) == (stored["ID"], len(simplified), "LAZY", "CT")
    ((dumped,),) = named(log, "Dumped")
    assert dumped == {**simplified, "Added": "yes"}
    assert wait_for(lambda: named(log, "Series")) == [[stored["ParentSeries"]]]


BROKEN = """
function OnStoredInstance(id, tags, metadata, origin)
   if tags['PatientID'] == 'BAD' then
      local nothing = nil
      return nothing.field
   end
   record('OnStoredInstance', tags['PatientID'])
end
"""


def test_errors_are_isolated(make_daemon, tmp_path: Path, fast_retries: None) -> None:
    log = tmp_path / "calls.jsonl"
    syntax = tmp_path / "syntax.lua"
    syntax.write_text("function (")
    _daemon, client = make_daemon(
        LuaScripts=[str(syntax), str(script(tmp_path, BROKEN, "broken.lua"))], LuaLog=str(log)
    )
    client.post("/instances", data=make_dicom(patient_id="BAD"))
    client.post("/instances", data=make_dicom(patient_id="GOOD"))
    assert wait_for(lambda: named(log, "OnStoredInstance")) == [["GOOD"]]
    (failure,) = wait_for(lambda: client.get("/events/failures").json())
    assert failure["Handler"] == "lua" and failure["Attempts"] == 3
    assert "broken.lua:" in failure["Error"] and "attempt to index" in failure["Error"]
    assert client.get("/system").status_code == 200


RELOAD = """
function Initialize() record('Initialize', '{v}') end
function Finalize() record('Finalize', '{v}') end
function OnStoredInstance(id) RestApiPut('/instances/' .. id .. '/metadata/Sample', '{v}') end
"""


def test_hot_reload(make_daemon, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "calls.jsonl"
    path = script(tmp_path, RELOAD.format(v="v1"))
    _daemon, client = make_daemon(
        LuaScripts=[str(path)], LuaLog=str(log), UserMetadata={"Sample": 1024}
    )
    first = client.post("/instances", data=make_dicom()).json()["ID"]
    wait_for(lambda: client.get(f"/instances/{first}/metadata/Sample").text == "v1")
    path.write_text(RECORDER + RELOAD.format(v="version2"))
    wait_for(lambda: named(log, "Initialize") == [["v1"], ["version2"]])
    assert named(log, "Finalize") == [["v1"]]
    second = client.post("/instances", data=make_dicom()).json()["ID"]
    wait_for(lambda: client.get(f"/instances/{second}/metadata/Sample").text == "version2")
    with caplog.at_level(logging.ERROR, logger="dicomd.scripting.lua"):
        path.write_text(RECORDER + "function OnStoredInstance(id\n")
        wait_for(lambda: "previous version keeps running" in caplog.text)
    assert "script.lua:" in caplog.text
    third = client.post("/instances", data=make_dicom()).json()["ID"]
    wait_for(lambda: client.get(f"/instances/{third}/metadata/Sample").text == "version2")


def test_helper_processes_filter_too(make_daemon, tmp_path: Path) -> None:
    """With several HTTP processes, every one of them runs the filters."""
    log = tmp_path / "calls.jsonl"
    _daemon, client = make_daemon(
        LuaScripts=[str(script(tmp_path, FILTERS))], LuaLog=str(log), HttpProcesses=2
    )
    for answer in [client.post("/instances", data=f) for f in make_series(6, patient_id="REJECT")]:
        assert answer.json()["Status"] == "FilteredOut"
    assert len(named(log, "ReceivedInstanceFilter")) == 6
