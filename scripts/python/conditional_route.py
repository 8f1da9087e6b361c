"""Conditional routing on tags: once a series is complete, CT goes to "ct-archive", MR to
"mr-archive", anything else stays. The decision is kept as metadata (``RoutedTo``, declared
in UserMetadata) so that it is visible in the REST API."""

import dicomd.script as dicomd

DESTINATIONS = {"CT": "ct-archive", "MR": "mr-archive"}


@dicomd.on_stable_series
def route_by_modality(event: dicomd.Event) -> None:
    destination = DESTINATIONS.get(event.tags().get("Modality", ""))
    if destination is None:
        return
    dicomd.set_metadata(event.resource_id, "RoutedTo", destination)
    dicomd.forward(event.resource_id, destination)
