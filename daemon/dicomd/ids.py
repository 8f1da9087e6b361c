"""Orthanc-compatible resource identifiers.

An Orthanc ID is the SHA-1 of the DICOM identifiers of a resource and its ancestors joined by
``|``, written as lowercase hex in five dash-separated groups of eight characters. Clients and
peers rely on these IDs being the same in dicomd as in Orthanc.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def hash_id(text: str) -> str:
    """SHA-1 of ``text`` in Orthanc's ``xxxxxxxx-xxxxxxxx-...`` form."""
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))


@dataclass(frozen=True)
class ResourceIds:
    """The four Orthanc IDs of an instance and its ancestors."""

    patient: str
    study: str
    series: str
    instance: str

    @classmethod
    def compute(
        cls, patient_id: str, study_uid: str, series_uid: str, sop_instance_uid: str
    ) -> ResourceIds:
        study_key = f"{patient_id}|{study_uid}"
        series_key = f"{study_key}|{series_uid}"
        return cls(
            patient=hash_id(patient_id),
            study=hash_id(study_key),
            series=hash_id(series_key),
            instance=hash_id(f"{series_key}|{sop_instance_uid}"),
        )
