"""REST routes that scripts add at run time (Orthanc's ``RegisterRestCallback``, dicomd's
``@route``): a table the REST layer consults before its own routes, as Orthanc lets plugins
override built-in URIs. Kept free of Flask so that the scripting layer stays in the core."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class ScriptRequest:
    """An HTTP request handed to a script's route."""

    method: str
    path: str
    groups: tuple[str, ...]
    args: dict[str, str]
    headers: dict[str, str]  # lower-case keys
    body: bytes
    username: str = ""


@dataclass
class ScriptResponse:
    """What a script's route answers."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)


RouteFunction = Callable[[ScriptRequest], ScriptResponse]


@dataclass(frozen=True)
class _Route:
    owner: str
    pattern: re.Pattern[str]
    methods: frozenset[str]  # empty: every method
    function: RouteFunction


class ScriptRoutes:
    """The routes of every loaded script, first registered first matched (the whole path
    must match the regular expression, as ``boost::regex_match`` in Orthanc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: list[_Route] = []

    def add(
        self, owner: str, regex: str, function: RouteFunction, methods: frozenset[str] = frozenset()
    ) -> None:
        route = _Route(owner, re.compile(regex), frozenset(m.upper() for m in methods), function)
        with self._lock:
            self._routes.append(route)

    def remove(self, owner: str) -> None:
        """Remove every route of ``owner`` (a script being unloaded)."""
        with self._lock:
            self._routes = [r for r in self._routes if r.owner != owner]

    def __bool__(self) -> bool:
        return bool(self._routes)

    def match(self, method: str, path: str) -> tuple[RouteFunction, tuple[str, ...]] | set[str]:
        """The function and regex groups serving ``method path``; or, when the path is
        served for other methods only, those methods (for a 405); or an empty set."""
        with self._lock:
            routes = list(self._routes)
        allowed: set[str] = set()
        for route in routes:
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if not route.methods or method.upper() in route.methods:
                return route.function, tuple(g or "" for g in found.groups())
            allowed |= route.methods
        return allowed
