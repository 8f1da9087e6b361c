"""``import orthanc`` on a real daemon: the plugin's registrations, numbering, DicomInstance,
RestOutput, REST access, errors, and calls dicomd cannot honour."""

from __future__ import annotations

from pathlib import Path

from pyscripts import results, write_script

from conftest import wait_for
from dicomfactory import make_dicom

SCRIPT = """
import json
import orthanc

out = {"changes": [], "stored": [], "load": {}}
load = out["load"]
load["uuid"] = orthanc.GenerateUuid()
load["config"] = json.loads(orthanc.GetConfiguration())["Mark"]
load["system"] = json.loads(orthanc.RestApiGet("/system"))["Name"]
try:
    orthanc.RestApiGet("/patients/nope")
except orthanc.OrthancException as e:
    load["missing"] = e.args[0] == orthanc.ErrorCode.UNKNOWN_RESOURCE
try:
    orthanc.CreateDicom("{}", None, 0)
except orthanc.OrthancException as e:
    load["unsupported"] = [e.args[0] == orthanc.ErrorCode.NOT_IMPLEMENTED, e.args[1]]
load["hasattr"] = hasattr(orthanc, "NoSuchThing")
orthanc.LogInfo("loaded"); orthanc.LogWarning("loaded"); orthanc.LogError("loaded")

def on_change(change_type, resource_type, resource_id):
    out["changes"].append([change_type, resource_type, resource_id])

def on_stored(dicom, instance_id):
    md = {n: dicom.GetInstanceMetadata(n) for n in ("Origin", "TransferSyntax")
          if dicom.HasInstanceMetadata(n)}
    tags = json.loads(dicom.GetInstanceSimplifiedJson())
    out["stored"].append({
        "id": instance_id, "metadata": md, "patient": tags["PatientID"],
        "full": "0010,0020" in json.loads(dicom.GetInstanceJson()),
        "size": dicom.GetInstanceSize() == len(dicom.GetInstanceData()),
        "origin": dicom.GetInstanceOrigin() == orthanc.InstanceOrigin.REST_API,
        "pixels": dicom.HasInstancePixelData(), "frames": dicom.GetInstanceFramesCount(),
        "ts": dicom.GetInstanceTransferSyntaxUid(), "aet": dicom.GetInstanceRemoteAet(),
        "lookup": [orthanc.LookupPatient(tags["PatientID"]) == dicom_parent(instance_id),
                   orthanc.LookupStudy(tags["StudyInstanceUID"]) != "",
                   orthanc.LookupSeries(tags["SeriesInstanceUID"]) != "",
                   orthanc.LookupInstance(tags["SOPInstanceUID"]) == instance_id],
        "dicom": orthanc.GetDicomForInstance(instance_id) == dicom.GetInstanceData(),
    })
    # A REST call from a stored-instance callback: no deadlock.
    orthanc.RestApiPut(f"/instances/{instance_id}/metadata/Route", "seen")

def dicom_parent(instance_id):
    return json.loads(orthanc.RestApiGet(f"/instances/{instance_id}/patient"))["ID"]

def http_filter(uri, method, ip, headers, **get):
    if uri == "/not-a-bool":
        return "yes"
    return not (uri == "/statistics" and method == orthanc.HttpMethod.GET
                and headers.get("x-deny") == "1")

def hello(output, uri, **request):
    if request["method"] == "DELETE":
        output.SendMethodNotAllowed("GET,POST")
        return
    output.SetHttpHeader("X-Hello", "1")
    output.AnswerBuffer(json.dumps({"uri": uri, "groups": request["groups"],
                                    "get": request.get("get"),
                                    "body": request.get("body", b"").decode()}),
                        "application/json")

def results(output, uri, **request):
    output.AnswerBuffer(json.dumps(out), "application/json")

def plugin_only(output, uri, **request):
    output.AnswerBuffer("plugin", "text/plain")

def silent(output, uri, **request):
    pass

def rest_calls(output, uri, **request):
    answer = {}
    try:
        orthanc.RestApiGet("/plugin-only")
    except orthanc.OrthancException as e:
        answer["builtin"] = e.args[0]
    answer["after"] = orthanc.RestApiGetAfterPlugins("/plugin-only").decode()
    stored = json.loads(orthanc.RestApiPost("/instances", output_dicom()))
    answer["stored"] = stored["Status"]
    orthanc.RestApiPutAfterPlugins(f"/instances/{stored['ID']}/metadata/Route", b"x")
    answer["post"] = orthanc.RestApiPostAfterPlugins("/plugin-only", "").decode()
    orthanc.RestApiDelete(f"/instances/{stored['ID']}/metadata/Route")
    answer["stable"] = list(orthanc.SetStableStatus(stored["ParentSeries"], 0))
    try:
        orthanc.RegisterOnChangeCallback(on_change)
    except RuntimeError as e:
        answer["twice"] = str(e)
    orthanc.RestApiDeleteAfterPlugins(f"/instances/{stored['ID']}")
    output.AnswerBuffer(json.dumps(answer), "application/json")

def output_dicom():
    return json.loads(orthanc.GetConfiguration())["Sample"].encode("latin-1")

orthanc.RegisterOnChangeCallback(on_change)
orthanc.RegisterOnStoredInstanceCallback(on_stored)
orthanc.RegisterIncomingHttpRequestFilter(http_filter)
orthanc.RegisterRestCallback("/hello/(.*)", hello)
orthanc.RegisterRestCallback("/test/results", results)
orthanc.RegisterRestCallback("/plugin-only", plugin_only)
orthanc.RegisterRestCallback("/silent", silent)
orthanc.RegisterRestCallback("/rest-calls", rest_calls)
"""


def test_orthanc_module(make_daemon, tmp_path: Path) -> None:
    script = write_script(tmp_path / "scripts", "compat", SCRIPT)
    daemon, client = make_daemon(
        PythonScripts=[str(script)],
        StableAge=1,
        Mark="m",
        UserMetadata={"Route": 1024},
        Sample=make_dicom(patient_id="FROM-SCRIPT").decode("latin-1"),
    )
    out = results(client)
    load = out["load"]
    assert load["config"] == "m" and load["system"] == "dicomd" and load["missing"] is True
    assert load["unsupported"][0] is True and "CreateDicom" in load["unsupported"][1]
    assert load["hasattr"] is False and len(load["uuid"]) == 36
    assert [10, 4, ""] in out["changes"]  # ORTHANC_STARTED
    stored = client.post("/instances", data=make_dicom()).json()
    instance = stored["ID"]
    wait_for(lambda: client.get(f"/instances/{instance}/metadata/Route").text == "seen")
    out = wait_for(
        lambda: (o := results(client)) and [8, 2, stored["ParentSeries"]] in o["changes"] and o
    )
    assert [3, 3, instance] in out["changes"]  # NEW_INSTANCE, INSTANCE
    assert [4, 0, stored["ParentPatient"]] in out["changes"]  # NEW_PATIENT
    assert [13, 3, instance] in out["changes"]  # UPDATED_METADATA
    info = out["stored"][0]
    assert info["metadata"]["Origin"] == "RestApi" and info["patient"] == "PAT1"
    assert info["full"] and info["size"] and info["origin"] and info["dicom"]
    assert info["pixels"] is True and info["frames"] == 1 and info["aet"] == ""
    assert info["ts"] == "1.2.840.10008.1.2.1" and info["lookup"] == [True] * 4
    # Filters and routes.
    assert client.get("/statistics", headers={"X-Deny": "1"}).status_code == 403
    assert client.get("/statistics").status_code == 200
    assert client.get("/not-a-bool").status_code == 404  # a bad filter answer allows
    hello = client.post("/hello/world", data=b"body")
    assert hello.headers["X-Hello"] == "1"
    assert hello.json() == {"uri": "/hello/world", "groups": ["world"], "get": None, "body": "body"}
    assert client.get("/hello/x?a=b").json()["get"] == {"a": "b"}
    assert client.delete("/hello/x").status_code == 405
    assert client.get("/silent").status_code == 500
    calls = client.get("/rest-calls").json()
    assert calls["builtin"] == 17 and calls["after"] == "plugin" and calls["stored"] == "Success"
    assert "Can only register one" in calls["twice"]
    assert calls["post"] == "plugin" and calls["stable"] == [0, True]
