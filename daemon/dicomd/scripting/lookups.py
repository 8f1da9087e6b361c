"""Finding a resource by its DICOM identifier (Orthanc's ``LookupPatient`` and friends).

Orthanc IDs hash a resource's identifier together with its ancestors', so only a patient
is found by hashing; other levels scan the main tags of that level. That is linear in the
number of resources: fine for scripts' occasional lookups, and the place to use an index
lookup once the index offers one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..domain.model import Level
from ..ids import hash_id

if TYPE_CHECKING:
    from ..services import Services

UID_TAGS = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.INSTANCE: "SOPInstanceUID",
}


def find_by_uid(services: Services, level: Level, uid: str) -> str | None:
    index = services.index
    if level is Level.PATIENT:
        public_id = hash_id(uid)
        return public_id if index.get(level, public_id) is not None else None
    tag = UID_TAGS[level]
    for public_id in index.list_ids(level):
        resource = index.get(level, public_id)
        if resource is not None and resource.main_tags.get(tag) == uid:
            return public_id
    return None
