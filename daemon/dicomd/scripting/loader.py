"""Starts the script engines the configuration asks for.

Every process of the daemon runs them: filters (incoming instance, HTTP request, recycling)
must decide wherever the request lands, while notification handlers are registered with the
dispatcher of the main process only (``services.role == "main"``).
"""

from __future__ import annotations

import logging

from ..services import ScriptEngine, Services

log = logging.getLogger(__name__)


def start_engines(services: Services) -> list[ScriptEngine]:
    engines: list[ScriptEngine] = []
    if services.config.lua_scripts or services.config.execute_lua_enabled:
        from .lua import LuaEngine

        engines.append(LuaEngine(services))
    if services.config.python_scripts:
        from .python import PythonEngine

        engines.append(PythonEngine(services))
    for engine in engines:
        engine.start()
    return engines
