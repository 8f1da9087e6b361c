"""One loaded Python script: what it registered, and how its callbacks run.

A script's registrations are staged while its module executes and only take effect when
the engine activates it, so a script that fails to (re)load leaves nothing half-registered.
Every callback runs with the script as the current one (:data:`CURRENT`), which is how
``dicomd.script``'s module-level functions know whose daemon and log to use.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..domain.model import ChangeType
from ..events.handlers import Event, HttpFilter, InstanceFilter, RecyclingFilter
from .api import ScriptApi
from .routes import RouteFunction

if TYPE_CHECKING:
    from ..services import Services

CURRENT: contextvars.ContextVar[LoadedScript] = contextvars.ContextVar("dicomd_python_script")

T = TypeVar("T")
EventCallback = Callable[[Event], None]


@dataclass
class Registrations:
    """What a script asked for, staged until the script is activated."""

    events: list[tuple[frozenset[ChangeType], EventCallback]] = field(default_factory=list)
    recycling_filters: list[RecyclingFilter] = field(default_factory=list)
    instance_filters: list[InstanceFilter] = field(default_factory=list)
    http_filters: list[HttpFilter] = field(default_factory=list)
    routes: list[tuple[str, frozenset[str], RouteFunction]] = field(default_factory=list)
    heartbeats: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    started: list[Callable[[], None]] = field(default_factory=list)
    stopping: list[Callable[[], None]] = field(default_factory=list)
    # Which Register* of the orthanc module were called (each at most once, as in Orthanc).
    orthanc_singletons: set[str] = field(default_factory=set)


class LoadedScript:
    """A script file, one generation of it (each reload makes a new one)."""

    def __init__(self, services: Services, path: Path, name: str, generation: int) -> None:
        self.services = services
        self.path = path
        self.name = name  # unique among the scripts; the delivery position is kept under it
        self.generation = generation
        self.api = ScriptApi(services, "Plugins")
        self.log = logging.getLogger(f"dicomd.script.{name}")
        self.registered = Registrations()
        self.module: Any = None

    @property
    def handler_name(self) -> str:
        """Stable across reloads and restarts: delivery resumes where the previous
        generation stopped."""
        return f"python:{self.name}"

    @property
    def owner(self) -> str:
        """Names this generation's filters, routes and jobs, so unloading it removes
        exactly them."""
        return f"python:{self.name}#{self.generation}"

    def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call one of the script's functions with the script as the current one."""
        token = CURRENT.set(self)
        try:
            return function(*args, **kwargs)
        finally:
            CURRENT.reset(token)

    def wrap(self, function: Callable[..., T]) -> Callable[..., T]:
        """``function``, always run with the script as the current one."""

        def wrapped(*args: Any, **kwargs: Any) -> T:
            return self.run(function, *args, **kwargs)

        wrapped.__name__ = getattr(function, "__name__", "callback")
        return wrapped


class ScriptHandler:
    """The event handler of one script: one thread, so the script sees its events in log
    order and never twice at once, while other scripts run in parallel. When a callback
    raises, the others still run; the dispatcher's retry then re-runs only the callbacks
    that failed on that event."""

    def __init__(self, script: LoadedScript) -> None:
        self.script = script
        self.name = script.handler_name
        self._types: frozenset[ChangeType] = frozenset().union(
            *(types for types, _ in script.registered.events)
        )
        self._done: tuple[int, set[int]] = (-1, set())

    def wants(self, change_type: ChangeType) -> bool:
        return change_type in self._types

    def handle(self, event: Event) -> None:
        seq, done = self._done
        if seq != event.seq:
            done = set()
            self._done = (event.seq, done)
        failed: list[BaseException] = []
        for number, (types, callback) in enumerate(self.script.registered.events):
            if number in done or event.type not in types:
                continue
            try:
                self.script.run(callback, event)
                done.add(number)
            except Exception as exc:
                self.script.log.exception(
                    "%s failed on %r", getattr(callback, "__name__", "callback"), event
                )
                failed.append(exc)
        if failed:
            raise failed[0]
