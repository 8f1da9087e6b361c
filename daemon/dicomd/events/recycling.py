"""Recycling: making room when a store would exceed ``MaximumStorageSize`` or
``MaximumPatientCount``, as Orthanc does.

The unprotected patient with the oldest recycling order goes first (storing an instance of a
patient, or unprotecting it, moves it to the end). Filters (Lua ``RecyclingFilter`` and its
Python twin) may keep a patient; the next one is tried. Deleting a recycled patient logs a
Deleted event for each of its resources and a RecycledPatient event carrying the tags and
metadata it had, for ``OnRecycledPatient``.
"""

from __future__ import annotations

import contextlib
import logging

from ..domain.model import Level
from ..domain.registry import MetadataNames
from ..domain.resources import ResourceService
from ..errors import UnknownResource
from .handlers import Filters

log = logging.getLogger(__name__)


class Recycler:
    BATCH = 20

    def __init__(self, resources: ResourceService, names: MetadataNames, filters: Filters):
        self.resources = resources
        self.names = names
        self.filters = filters

    def recycle_one(self, exclude: set[str]) -> bool:
        """Delete the next patient that may be recycled; False if there is none. Patients a
        filter keeps are added to ``exclude``, so that one store asks about each only once."""
        index = self.resources.index
        while candidates := index.recycling_candidates(exclude, self.BATCH):
            for patient in candidates:
                metadata = {self.names.name(k): v for k, v in index.metadata(patient).items()}
                tags = dict(patient.main_tags)
                if not self.filters.allow_recycling(patient.public_id, tags, metadata):
                    exclude.add(patient.public_id)
                    continue
                # Deleted meanwhile by someone else: room was made all the same.
                with contextlib.suppress(UnknownResource):
                    self.resources.delete(
                        Level.PATIENT,
                        patient.public_id,
                        recycled={"Tags": tags, "Metadata": metadata},
                    )
                log.info("recycled patient %s (%s)", patient.public_id, tags.get("PatientID"))
                return True
        return False
