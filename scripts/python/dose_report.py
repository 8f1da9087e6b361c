"""Parse a radiation dose structured report into metadata: the study's total DLP and the
largest CTDIvol, as ``DoseDLP`` and ``DoseCTDIvol`` (declared in UserMetadata), so that
dose audits can read them without opening the SR."""

from typing import Any

import dicomd.script as dicomd

DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"


def measurements(items: list[dict[str, Any]], name: str) -> list[float]:
    """Every numeric value of a concept, anywhere in the SR content tree."""
    found: list[float] = []
    for item in items:
        meaning = (item.get("ConceptNameCodeSequence") or [{}])[0].get("CodeMeaning")
        if meaning == name:
            for value in item.get("MeasuredValueSequence", []):
                found.append(float(value["NumericValue"]))
        found += measurements(item.get("ContentSequence", []), name)
    return found


@dicomd.on_stored_instance
def read_dose(event: dicomd.Event) -> None:
    tags = event.tags()
    if tags.get("SOPClassUID") != DOSE_SR:
        return
    content = tags.get("ContentSequence", [])
    dlp = measurements(content, "DLP")
    ctdi = measurements(content, "Mean CTDIvol")
    series = dicomd.describe(event.resource_id)["ParentSeries"]
    study = dicomd.describe(series)["ParentStudy"]
    if dlp:
        dicomd.set_metadata(study, "DoseDLP", f"{sum(dlp):g}")
    if ctdi:
        dicomd.set_metadata(study, "DoseCTDIvol", f"{max(ctdi):g}")
