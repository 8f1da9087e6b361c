"""Python scripts with dicomd's own API (``dicomd.script``) on a real daemon: every
registration function and action, error paths, isolation and hot reload."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pyscripts import failures, results, write_script

from dicomfactory import make_dicom, make_series

NATIVE = """
import contextvars
import dicomd.script as dicomd

seen = []
loaded = {"uid": dicomd.generate_uid("series"), "config": dicomd.configuration()["Mark"]}

def record(*what):
    seen.append([str(w) for w in what])

@dicomd.on_stored_instance
def stored(event):
    record("stored", event.origin()["RequestOrigin"], event.tags()["PatientID"])
    dicomd.set_metadata(event.resource_id, "Route", "pacs")
    assert dicomd.get_metadata(event.resource_id, "Route") == "pacs"
    assert dicomd.delete_metadata(event.resource_id, "Route") is True
    assert dicomd.delete_metadata(event.resource_id, "Route") is False
    dicomd.set_metadata(event.resource_id, "Route", "done")
    dicomd.add_attachment(event.resource_id, "report", b"PDF")
    found = dicomd.find("instance", event.tags()["SOPInstanceUID"])
    assert found == event.resource_id
    assert dicomd.find("study", event.tags()["StudyInstanceUID"])
    assert dicomd.find("patient", event.tags()["PatientID"])
    assert dicomd.find("series", "1.2.3.nope") is None
    assert dicomd.lookup("nope") is None
    assert dicomd.rest("GET", f"/instances/{event.resource_id}").ok

@dicomd.on_stable_series
def stable_series(event):
    record("stable", event.level.title, event.resource_id)

@dicomd.on_stable_study
def stable_study(event):
    record("stable", event.level.title, event.resource_id)

@dicomd.on_stable_patient
def stable_patient(event):
    record("stable", event.level.title, event.resource_id)
    dicomd.protect(event.resource_id)

@dicomd.on_updated("instance")
def updated(event):
    record("updated", event.type.name, event.resource_id)

@dicomd.on_deleted("study")
def deleted(event):
    record("deleted", event.level.title, event.resource_id)

@dicomd.on_change
def everything(event):
    record("change", event.type.name)

@dicomd.on_heartbeat(0.1)
def beat():
    if not any(s[0] == "beat" for s in seen):
        record("beat")

@dicomd.on_started
def started():
    record("started")

@dicomd.incoming_instance_filter
def no_rejects(tags, origin, info):
    return tags["PatientID"] != "REJECT"

@dicomd.http_filter
def no_secret(method, uri, ip, username, headers):
    return uri != "/secret" and headers.get("x-block") != "yes"

@dicomd.route("/test/results")
def get_results(request):
    return seen

@dicomd.route("/test/echo/([a-z]+)", methods=["GET", "POST"])
def echo(request):
    return {"Method": request.method, "Groups": list(request.groups), "Args": request.args,
            "Body": request.body.decode(), "Loaded": loaded}

@dicomd.route("/test/raw")
def raw(request):
    return dicomd.Response(201, b"made", "text/plain", {"X-Made": "1"})

@dicomd.route("/test/bad")
def bad(request):
    return 42

@dicomd.route("/test/thread")
def in_thread(request):
    import threading
    out = []
    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(lambda: out.append(dicomd.generate_uid()),))
    worker.start()
    worker.join()
    return {"uid": out[0]}
"""


def test_native_api(make_daemon, tmp_path: Path) -> None:
    script = write_script(tmp_path / "scripts", "native", NATIVE)
    daemon, client = make_daemon(
        PythonScripts=[str(script)],
        StableAge=1,
        Mark="m",
        UserMetadata={"Route": 1024},
        UserContentType={"report": 1025},
    )
    assert ["started"] in results(client)
    assert (
        client.post("/instances", data=make_dicom(patient_id="REJECT")).json()["Status"]
        == "FilteredOut"
    )
    stored = [client.post("/instances", data=d).json() for d in make_series(2)]
    instance = stored[0]["ID"]

    def metadata_done() -> bool:
        answer = client.get(f"/instances/{instance}/metadata/Route")
        return answer.status_code == 200 and answer.text == "done"

    from conftest import wait_for

    wait_for(metadata_done)
    # The script adds the attachment just after it writes "done".
    wait_for(lambda: client.get(f"/instances/{instance}/attachments/report/data").content == b"PDF")
    seen = wait_for(
        lambda: (
            (s := results(client)) and ["stable", "Patient", stored[0]["ParentPatient"]] in s and s
        )
    )
    assert ["stored", "RestApi", "PAT1"] in seen
    assert ["stable", "Series", stored[0]["ParentSeries"]] in seen
    assert ["stable", "Study", stored[0]["ParentStudy"]] in seen
    assert ["updated", "UpdatedMetadata", instance] in seen
    assert ["updated", "UpdatedAttachment", instance] in seen
    assert ["change", "NewInstance"] in seen and ["change", "StableSeries"] in seen
    wait_for(lambda: ["beat"] in results(client))
    assert client.get(f"/patients/{stored[0]['ParentPatient']}/protected").text == "1"
    # Filters, routes and the daemon's auth.
    assert client.get("/secret").status_code == 403
    assert client.get("/system", headers={"X-Block": "yes"}).status_code == 403
    echo = client.post("/test/echo/abc?x=1", data=b"hi").json()
    assert echo["Method"] == "POST" and echo["Groups"] == ["abc"] and echo["Body"] == "hi"
    assert echo["Loaded"]["config"] == "m" and len(echo["Loaded"]["uid"]) > 10
    assert client.get("/test/echo/abc", params={"y": "2"}).json()["Args"] == {"y": "2"}
    assert client.delete("/test/echo/abc").status_code == 405
    raw = client.get("/test/raw")
    assert raw.status_code == 201 and raw.content == b"made" and raw.headers["X-Made"] == "1"
    bad = client.get("/test/bad")
    assert bad.status_code == 500 and "int" in bad.json()["Details"]
    assert len(client.get("/test/thread").json()["uid"]) > 10
    assert client.get("/nothing-here").status_code == 404
    # Deletion.
    client.delete(f"/studies/{stored[0]['ParentStudy']}")
    wait_for(lambda: ["deleted", "Study", stored[0]["ParentStudy"]] in results(client))
    assert not [s for s in results(client) if s[0] == "deleted" and s[1] != "Study"]


def test_auth_applies_to_script_routes(make_daemon, tmp_path: Path) -> None:
    script = write_script(tmp_path / "scripts", "native", NATIVE)
    _, client = make_daemon(
        PythonScripts=[str(script)],
        Mark="m",
        AuthenticationEnabled=True,
        RegisteredUsers={"alice": "secret"},
    )
    assert client.get("/test/results").status_code == 401
    client.auth = ("alice", "secret")
    assert client.get("/test/results").status_code == 200


ERRORS = """
import dicomd.script as dicomd

calls = []

@dicomd.on_stored_instance
def first(event):
    calls.append("first")
    raise RuntimeError("callback broke")

@dicomd.on_stored_instance
def second(event):
    calls.append("second")

@dicomd.http_filter
def broken_filter(method, uri, ip, username, headers):
    raise ValueError("filter broke")

@dicomd.recycling_filter
def keep_all(patient_id, tags, metadata):
    return False

@dicomd.route("/test/calls")
def get_calls(request):
    return calls
"""


def test_error_paths_and_isolation(make_daemon, tmp_path: Path) -> None:
    from conftest import wait_for

    folder = tmp_path / "scripts"
    broken = write_script(folder, "broken", "import no_such_module_anywhere\n")
    syntax = write_script(folder, "syntax", "def (:\n")
    errors = write_script(folder, "errors", ERRORS)
    _, client = make_daemon(
        PythonScripts=[str(broken), str(syntax), str(errors)], MaximumPatientCount=1
    )
    # The failing filter allows; the failing callback does not stop the other one, and is
    # retried alone before its failure is recorded.
    assert client.post("/instances", data=make_dicom()).json()["Status"] == "Success"
    found = wait_for(lambda: failures(client))
    assert "callback broke" in str(found[0])
    assert found[0].get("Handler", "python:errors") == "python:errors"
    assert results(client, "/test/calls") == ["first", "second", "first", "first"]
    # The recycling filter keeps every patient: the next patient cannot be stored.
    assert client.post("/instances", data=make_dicom(patient_id="P2")).status_code == 507


def test_hot_reload(make_daemon, tmp_path: Path) -> None:
    from conftest import wait_for

    def version(text: str, stamp: float) -> None:
        write_script(
            tmp_path / "scripts",
            "live",
            f"""
            import dicomd.script as dicomd
            @dicomd.route("/test/version")
            def v(request):
                return "{text}"
            @dicomd.on_stored_instance
            def stored(event):
                dicomd.set_metadata(event.resource_id, "Route", "{text}")
            """,
        )
        os.utime(path, (stamp, stamp))

    path = tmp_path / "scripts" / "live.py"
    version("v1", time.time() - 30)
    _, client = make_daemon(PythonScripts=[str(path)], UserMetadata={"Route": 1024})
    assert client.get("/test/version").text == "v1"
    version("v2", time.time() - 20)
    wait_for(lambda: client.get("/test/version").text == "v2")
    path.write_text("raise ImportError('half-written edit')\n")
    os.utime(path, (time.time() - 10, time.time() - 10))
    time.sleep(1.5)
    assert client.get("/test/version").text == "v2"  # the broken edit keeps v2
    instance = client.post("/instances", data=make_dicom()).json()["ID"]
    wait_for(lambda: client.get(f"/instances/{instance}/metadata/Route").text == "v2")


SLOW = """
import time
from pathlib import Path
import dicomd.script as dicomd

@dicomd.on_stored_instance
def slow(event):
    marks = Path(dicomd.configuration()["Marks"])
    first_time = not marks.exists()
    with marks.open("a") as f:
        f.write(f"start {event.resource_id}\\n")
    if first_time:
        time.sleep(60)  # killed in here
    with marks.open("a") as f:
        f.write(f"done {event.resource_id}\\n")
"""


@pytest.mark.slow
def test_callback_in_progress_runs_after_sigkill(daemon_process, tmp_path: Path) -> None:
    from conftest import wait_for

    script = write_script(tmp_path / "scripts", "slow", SLOW)
    marks = tmp_path / "marks.txt"
    proc = daemon_process(PythonScripts=[str(script)], Marks=str(marks)).start()
    instance = proc.client().post("/instances", data=make_dicom()).json()["ID"]
    wait_for(lambda: marks.exists() and "start" in marks.read_text())
    proc.kill()
    proc.start()
    wait_for(lambda: f"done {instance}" in marks.read_text())
