"""The DICOM conformance statement (``/tools/dicom-conformance``): which SOP classes and
transfer syntaxes the DICOM server and client of dicomd support, generated from the same
tables they use, so that it cannot drift from what the daemon does."""

from __future__ import annotations

from pydicom._uid_dict import UID_dictionary

from .settings import KNOWN_TRANSFER_SYNTAXES

VERIFICATION = ("1.2.840.10008.1.1",)
QUERY_RETRIEVE = {
    "C-FIND": ("1.2.840.10008.5.1.4.1.2.1.1", "1.2.840.10008.5.1.4.1.2.2.1"),
    "C-MOVE": ("1.2.840.10008.5.1.4.1.2.1.2", "1.2.840.10008.5.1.4.1.2.2.2"),
    "C-GET": ("1.2.840.10008.5.1.4.1.2.1.3", "1.2.840.10008.5.1.4.1.2.2.3"),
}


def storage_sop_classes() -> list[str]:
    """Every storage SOP class of pydicom's UID dictionary (retired ones included, as a
    scanner may still send them), by keyword."""
    uids = [
        uid
        for uid, (_name, kind, _info, _retired, keyword) in UID_dictionary.items()
        if kind == "SOP Class"
        and keyword.endswith("Storage")
        and keyword != "MediaStorageDirectoryStorage"
    ]
    return sorted(uids, key=lambda uid: UID_dictionary[uid][4].lower())


def _table(uids: list[str] | tuple[str, ...]) -> list[str]:
    names = [(UID_dictionary[uid][4] or uid, uid) for uid in uids]
    width = max(len(name) for name, _ in names)
    return [f"  {name.ljust(width)} | {uid}" for name, uid in names]


def _section(title: str, lines: list[str]) -> list[str]:
    return [title, "-" * len(title), "", *lines, "", ""]


def conformance_statement(scp: tuple[str, ...], scu: tuple[str, ...]) -> str:
    """The statement, for the DIMSE services the server (``scp``) and the client
    (``scu``) support: among "C-ECHO", "C-STORE", "C-FIND", "C-MOVE", "C-GET"."""
    lines = ["DICOM conformance statement of dicomd", "=" * 37, "", ""]
    for role, supported in (("SCP", scp), ("SCU", scu)):
        for service in ("C-ECHO", "C-STORE", "C-FIND", "C-MOVE", "C-GET"):
            if service not in supported:
                continue
            title = f"{service} {role}"
            if service == "C-ECHO":
                uids: list[str] | tuple[str, ...] = VERIFICATION
            elif service == "C-STORE":
                uids = storage_sop_classes()
            else:
                uids = QUERY_RETRIEVE[service]
            intro = f"dicomd supports these SOP classes as an {role} for {service}:"
            lines += _section(title, [intro, "", *_table(uids)])
    if not scp and not scu:
        lines += ["The DICOM server and client are not enabled.", "", ""]
    lines += _section(
        "Transfer syntaxes",
        [
            "The server accepts presentation contexts in any of these transfer syntaxes",
            "(narrowed by AcceptedTransferSyntaxes and /tools/accepted-transfer-syntaxes);",
            "it prefers Explicit VR Little Endian, and stores instances as received:",
            "",
            *_table(KNOWN_TRANSFER_SYNTAXES),
            "",
            "Extended negotiation is not supported.",
        ],
    )
    return "\n".join(lines)
