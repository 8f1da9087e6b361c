"""``POST /tools/execute-script``: run Lua code in the main Lua runtime (Orthanc's endpoint,
off unless ``ExecuteLuaEnabled``)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, request

from ..errors import NotImplementedFeature
from .common import services

blueprint = Blueprint("scripts", __name__)
log = logging.getLogger(__name__)


def _lua_engine() -> Any:
    # The Services keeps its engines private; the Lua one is the engine that can execute.
    for engine in services().script_engines():
        if callable(getattr(engine, "execute", None)):
            return engine
    raise NotImplementedFeature("The Lua engine is not running")


@blueprint.post("/tools/execute-script")
def execute_script() -> Response:
    if not services().config.execute_lua_enabled:
        log.error(
            "The execution of Lua scripts is disabled; set ExecuteLuaEnabled to true to allow it"
        )
        return Response(b"", status=403)
    output = _lua_engine().execute(request.get_data())
    return Response(output, content_type="text/plain; charset=utf-8")
