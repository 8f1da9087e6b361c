"""Archive a patient before recycling deletes it: the filter copies every instance to
``<ArchiveFolder>/<patient id>/`` and only then lets the patient go; if the copy fails the
filter refuses, and dicomd tries the next candidate. A recycled-patient notification logs
what went."""

from pathlib import Path
from typing import Any

import dicomd.script as dicomd


@dicomd.recycling_filter
def archive(patient_id: str, tags: dict[str, Any], metadata: dict[str, str]) -> bool:
    folder = Path(dicomd.configuration()["ArchiveFolder"]) / patient_id
    folder.mkdir(parents=True, exist_ok=True)
    for study in dicomd.describe(patient_id)["Studies"]:
        for series in dicomd.describe(study)["Series"]:
            for instance in dicomd.describe(series)["Instances"]:
                answer = dicomd.rest("GET", f"/instances/{instance}/file")
                if not answer.ok:
                    return False
                (folder / f"{instance}.dcm").write_bytes(answer.body)
    return True


@dicomd.on_recycled_patient
def recycled(event: dicomd.Event) -> None:
    dicomd.log().warning(
        "recycled patient %s (%s)", event.tags().get("PatientID"), event.resource_id
    )
