"""Starts the script engines the configuration asks for.

Every process of the daemon runs them: filters (incoming instance, HTTP request, recycling)
must decide wherever the request lands, while notification handlers are registered with the
dispatcher of the main process only (``daemon.role == "main"``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..app import Daemon

log = logging.getLogger(__name__)


class ScriptEngine(Protocol):
    """What the daemon needs of a script engine."""

    def start(self) -> None:
        """Load the scripts and register their handlers and filters."""
        ...

    def stop(self) -> None:
        """Unregister everything and call the scripts' finalisers."""
        ...


def start_engines(daemon: Daemon) -> list[ScriptEngine]:
    engines: list[ScriptEngine] = []
    if daemon.config.lua_scripts or daemon.config.execute_lua_enabled:
        from .lua import LuaEngine

        engines.append(LuaEngine(daemon))
    if daemon.config.python_scripts:
        from .python import PythonEngine

        engines.append(PythonEngine(daemon))
    for engine in engines:
        engine.start()
    return engines
