"""What scripts did, reported by the tools that run them for a person to check
(``dicomd test-script``, ``dicomd replay``): the actions they took, or in a dry run would
have taken, and the errors they raised, as text or as JSON."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..events import delivery
from ..scripting.actions import Action


def action_lines(actions: list[Action]) -> list[str]:
    """The ``Actions (n):`` part of a report, one line per action."""
    return [f"Actions ({len(actions)}):"] + ["  " + action.describe() for action in actions]


def error_lines(errors: list[str]) -> list[str]:
    """The ``Errors (n):`` part of a report; an error's further lines are indented."""
    lines = [f"Errors ({len(errors)}):"]
    lines += ["  " + e.replace("\n", "\n  ") for e in errors]
    return lines


@dataclass
class Report:
    """``dicomd test-script``'s report."""

    stored: list[str] = field(default_factory=list)
    already_stored: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    actions: list[Action] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def as_json(self) -> dict[str, Any]:
        return {
            "Stored": self.stored,
            "AlreadyStored": self.already_stored,
            "Rejected": [{"File": f, "Reason": r} for f, r in self.rejected],
            "Actions": [action.as_json() for action in self.actions],
            "Errors": self.errors,
        }

    def text(self) -> str:
        lines = [
            f"Input: {len(self.stored)} stored, {len(self.already_stored)} already stored, "
            f"{len(self.rejected)} rejected"
        ]
        lines += [f"  rejected {f}: {r}" for f, r in self.rejected]
        return "\n".join(lines + action_lines(self.actions) + error_lines(self.errors))


class ErrorCollector(logging.Handler):
    """Keeps the errors logged while scripts run: a script that failed to load, its own
    ``log.error``, a REST call of a script that failed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The dispatcher logs every failed attempt of a handler; the tools report a
        # handler's failures once, themselves.
        if not record.name.startswith(delivery.__name__):
            self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [self.format(record) for record in self.records]
