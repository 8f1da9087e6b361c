"""A record of what scripts do, for ``dicomd test-script``, ``dicomd replay`` and the pytest
plugin: every action a script takes through :class:`~dicomd.scripting.api.ScriptApi` is
listed, and in a dry run the chosen kinds of action are only listed, not carried out."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Every kind of action ScriptApi records.
ACTION_KINDS = frozenset(
    {
        "set-metadata",
        "delete-metadata",
        "add-attachment",
        "protect",
        "unprotect",
        "delete",
        "set-stable",
        "forward",
        "rest",  # a REST call that may change something (POST, PUT, DELETE)
    }
)


@dataclass(frozen=True)
class Action:
    kind: str
    target: str  # a resource ID, or a URI for "rest"
    details: dict[str, Any]
    origin: str  # "Lua", "Plugins"...
    executed: bool
    time: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        return {
            "Kind": self.kind,
            "Target": self.target,
            "Details": self.details,
            "Origin": self.origin,
            "Executed": self.executed,
        }

    def describe(self) -> str:
        """One line, e.g. ``[Lua] forward 6a1c... peer='pacs'  (not carried out)``."""
        details = ", ".join(f"{k}={v!r}" for k, v in self.details.items())
        done = "" if self.executed else "  (not carried out)"
        return f"[{self.origin}] {self.kind} {self.target} {details}{done}"


class ActionLog:
    """Collects actions; ``dry`` lists the kinds that are recorded but not carried out."""

    def __init__(self, dry: Iterable[str] = ()) -> None:
        self.dry = frozenset(dry)
        unknown = self.dry - ACTION_KINDS
        if unknown:
            raise ValueError(f"unknown action kinds: {', '.join(sorted(unknown))}")
        self._actions: list[Action] = []
        self._lock = threading.Lock()

    def record(self, kind: str, target: str, origin: str, details: dict[str, Any]) -> bool:
        """List an action; whether to carry it out."""
        execute = kind not in self.dry
        with self._lock:
            self._actions.append(Action(kind, target, details, origin, execute))
        return execute

    def actions(self) -> list[Action]:
        with self._lock:
            return list(self._actions)
