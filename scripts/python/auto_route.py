"""Auto-routing: send every instance that arrives to the peer "pacs" (Lua: SendToPeer in
OnStoredInstance). Instances that scripts made themselves are not sent again."""

import dicomd.script as dicomd


@dicomd.on_stored_instance
def send_to_pacs(event: dicomd.Event) -> None:
    if event.origin().get("RequestOrigin") != "Plugins":
        dicomd.forward(event.resource_id, "pacs")
