"""Write each stable series to a folder tree:
``<ExportFolder>/<PatientID>/<StudyDate> <StudyDescription>/<SeriesNumber> <Modality>/``.
``ExportFolder`` is read from the configuration file (dicomd keeps keys it does not know)."""

import json
import re
from pathlib import Path

import dicomd.script as dicomd


def safe(text: str) -> str:
    return re.sub(r"[^\w.\- ]", "_", text).strip() or "unknown"


@dicomd.on_stable_series
def export_series(event: dicomd.Event) -> None:
    root = Path(dicomd.configuration().get("ExportFolder", "export"))
    series = dicomd.describe(event.resource_id)
    study = dicomd.describe(series["ParentStudy"])
    patient = study["PatientMainDicomTags"]
    folder = (
        root
        / safe(patient.get("PatientID", ""))
        / safe(
            f"{study['MainDicomTags'].get('StudyDate', '')} "
            f"{study['MainDicomTags'].get('StudyDescription', '')}"
        )
        / safe(
            f"{series['MainDicomTags'].get('SeriesNumber', '')} "
            f"{series['MainDicomTags'].get('Modality', '')}"
        )
    )
    folder.mkdir(parents=True, exist_ok=True)
    for instance_id in series["Instances"]:
        tags = json.loads(dicomd.rest("GET", f"/instances/{instance_id}/simplified-tags").body)
        data = dicomd.rest("GET", f"/instances/{instance_id}/file").body
        (folder / f"{safe(tags['SOPInstanceUID'])}.dcm").write_bytes(data)
