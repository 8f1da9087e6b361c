"""Revisions of metadata and attachments, as Orthanc exposes them over HTTP.

Every value carries a revision (0 when first written, then one more per change); its ETag is
``"<revision>-<md5 of the value>"``. A writer proves it saw the current value by sending that
ETag in ``If-Match``; with ``CheckRevisions`` it must, whenever the value already exists.
"""

from __future__ import annotations

from ..errors import ParameterOutOfRange, Revision
from ..storage.index import RevisionCheck


def etag(revision: int, md5: str) -> str:
    return f'"{revision}-{md5}"'


def parse_etag(header: str) -> tuple[int, str]:
    """``"3-abc..."`` (quotes optional) as (3, "abc..."); anything else is a 400."""
    text = header.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    revision, dash, md5 = text.partition("-")
    if not dash or not revision.isdigit():
        raise ParameterOutOfRange(f"An ETag (revision, then MD5) was expected, not: {header}")
    return int(revision), md5


def not_modified(if_none_match: str | None, revision: int, md5: str) -> bool:
    """Whether a GET with this ``If-None-Match`` already has the current value (304)."""
    return if_none_match is not None and parse_etag(if_none_match) == (revision, md5)


def write_check(if_match: str | None, check_revisions: bool) -> RevisionCheck:
    """The check of a PUT: a first write needs no ``If-Match``; replacing a value needs a
    matching one when ``CheckRevisions`` is on, and a given one must always match."""
    expected = parse_etag(if_match) if if_match is not None else None

    def check(current: tuple[int, str] | None) -> None:
        if current is None:
            return
        if expected is None:
            if check_revisions:
                raise Revision("HTTP header If-Match is missing")
        elif expected != current:
            raise Revision(f"The revision is {etag(*current)}, not {if_match}")

    return check


def delete_check(if_match: str | None, check_revisions: bool) -> RevisionCheck:
    """The check of a DELETE: with ``CheckRevisions``, ``If-Match`` is always required."""
    if if_match is None and check_revisions:
        raise Revision("HTTP header If-Match is missing")
    return write_check(if_match, check_revisions)
