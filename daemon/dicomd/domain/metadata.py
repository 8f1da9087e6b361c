"""Metadata of patients, studies, series and instances, as Orthanc serves them.

Core metadata (numbers below 1024) are written by dicomd at store time and are read-only to
users; user metadata (1024..65535) are free-form UTF-8 text with revisions. Every change is
logged as ``UpdatedMetadata`` in the same transaction.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..errors import BadRequest, UnknownResource
from ..storage.index import Index
from .model import Change, Level
from .registry import MetadataNames
from .resources import ResourceService
from .revisions import delete_check, etag, write_check


def value_md5(value: str) -> str:
    return hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()


def value_etag(revision: int, value: str) -> str:
    return etag(revision, value_md5(value))


class MetadataService:
    """Reads and writes metadata, enforcing Orthanc's naming and revision rules."""

    def __init__(
        self, index: Index, resources: ResourceService, names: MetadataNames, check_revisions: bool
    ) -> None:
        self.index = index
        self.resources = resources
        self.names = names
        self.check_revisions = check_revisions

    def list(self, level: Level, public_id: str, *, expand: bool, numeric: bool) -> Any:
        """``GET …/metadata``: names (or numbers); with ``expand``, an object of values."""
        metadata = self.index.metadata(self.resources.get(level, public_id))
        if expand:
            return {(str(k) if numeric else self.names.name(k)): v for k, v in metadata.items()}
        return [k if numeric else self.names.name(k) for k in metadata]

    def get(self, level: Level, public_id: str, name: str) -> tuple[str, int] | None:
        """One metadata's value and revision; None if the resource does not have it."""
        kind = self.names.number(name)
        return self.index.metadata_entry(self.resources.get(level, public_id), kind)

    def set(
        self,
        level: Level,
        public_id: str,
        name: str,
        value: bytes | str,
        if_match: str | None,
        *,
        check_revisions: bool | None = None,
    ) -> tuple[int, Change]:
        """Write a user metadata; returns the new revision and the logged change.
        ``check_revisions=False`` writes unconditionally (scripts' own API)."""
        kind = self.names.writable(name)
        text = _text(value)
        resource = self.resources.get(level, public_id)
        enforce = self.check_revisions if check_revisions is None else check_revisions
        return self.index.set_metadata(resource, kind, text, write_check(if_match, enforce))

    def delete(
        self,
        level: Level,
        public_id: str,
        name: str,
        if_match: str | None,
        *,
        check_revisions: bool | None = None,
    ) -> Change:
        """Delete a user metadata; 404 if it is not there."""
        kind = self.names.writable(name)
        enforce = self.check_revisions if check_revisions is None else check_revisions
        check = delete_check(if_match, enforce)
        resource = self.resources.get(level, public_id)
        change = self.index.delete_metadata(resource, kind, check)
        if change is None:
            raise UnknownResource(f"{public_id} has no metadata {name}", empty_body=False)
        return change


def _text(value: bytes | str) -> str:
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"A metadata value must be UTF-8 text: {exc}") from None
