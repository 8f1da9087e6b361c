"""The change log as Orthanc's ``/changes`` serves it: paged by sequence number."""

from __future__ import annotations

from typing import Any

from ..storage.index import Index
from .model import Change

# Orthanc caps a page at 100 changes, and a limit of 0 means that cap.
MAX_PAGE = 100


def change_json(change: Change) -> dict[str, Any]:
    return {
        "ChangeType": change.change_type.name,
        "Date": change.date,
        "ID": change.public_id,
        "Path": change.path,
        "ResourceType": change.resource_type,
        "Seq": change.seq,
    }


class ChangeLogService:
    def __init__(self, index: Index) -> None:
        self.index = index

    def page(self, since: int, limit: int) -> dict[str, Any]:
        """Changes after ``since`` (exclusive). ``Last`` is the last Seq returned, or the
        last Seq ever shown when none is, so a client polling with ``since=Last`` never
        misses nor repeats a change."""
        if limit <= 0 or limit > MAX_PAGE:
            limit = MAX_PAGE
        changes, done = self.index.changes(since, limit)
        return self._answer(changes, done)

    def last(self) -> dict[str, Any]:
        """``?last``: only the latest change."""
        change = self.index.last_change()
        return self._answer([change] if change else [], True)

    def _answer(self, changes: list[Change], done: bool) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "Changes": [change_json(c) for c in changes],
            "Done": done,
            "Last": changes[-1].seq if changes else self.index.last_logged_seq(),
        }
        if changes:
            answer["First"] = changes[0].seq
        return answer

    def clear(self) -> None:
        self.index.clear_changes()
