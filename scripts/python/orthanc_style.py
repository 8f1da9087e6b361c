"""An automation script written for Orthanc's Python plugin, running unchanged: it tags
every stable study with the number of its instances and adds ``/hello/<name>``."""

import json

import orthanc


def OnChange(change_type, level, resource_id):  # noqa: N802
    if change_type == orthanc.ChangeType.STABLE_STUDY:
        study = json.loads(orthanc.RestApiGet(f"/studies/{resource_id}"))
        count = sum(
            len(json.loads(orthanc.RestApiGet(f"/series/{s}"))["Instances"])
            for s in study["Series"]
        )
        orthanc.RestApiPut(f"/studies/{resource_id}/metadata/InstanceCount", str(count))
        orthanc.LogWarning(f"study {resource_id} is stable with {count} instances")


def Hello(output, uri, **request):  # noqa: N802
    if request["method"] != "GET":
        output.SendMethodNotAllowed("GET")
    else:
        output.AnswerBuffer(f"Hello {request['groups'][0]}\n", "text/plain")


orthanc.RegisterOnChangeCallback(OnChange)
orthanc.RegisterRestCallback("/hello/(.*)", Hello)
