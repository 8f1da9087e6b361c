"""Protect a patient from recycling as soon as one of their studies is a research study
(its StudyDescription mentions RESEARCH)."""

import dicomd.script as dicomd


@dicomd.on_stored_instance
def protect_research(event: dicomd.Event) -> None:
    if "RESEARCH" in event.tags().get("StudyDescription", "").upper():
        patient = dicomd.find("patient", event.tags()["PatientID"])
        if patient is not None:
            dicomd.protect(patient)
