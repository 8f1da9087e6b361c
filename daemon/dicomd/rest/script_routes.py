"""Serves the routes that scripts add at run time (``scripting/routes.py``).

A ``before_request`` hook installed after authentication, so script routes share the
daemon's authentication and HTTP filters, and take precedence over built-in routes as
plugin routes do in Orthanc. In-process calls made with ``builtin=True`` (Orthanc's
``RestApiGet``, as opposed to ``RestApiGetAfterPlugins``) skip them.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request

from ..errors import InternalError
from ..scripting.routes import ScriptRequest, ScriptRoutes

log = logging.getLogger(__name__)

# WSGI environ key: the in-process call wants the built-in API only.
BUILTIN_KEY = "dicomd.builtin_only"
EXTENSION = "dicomd.script_routes"


def install_script_routes(app: Flask) -> ScriptRoutes:
    routes = ScriptRoutes()
    app.extensions[EXTENSION] = routes

    @app.before_request
    def script_route() -> Response | None:
        if not routes or request.environ.get(BUILTIN_KEY):
            return None
        found = routes.match(request.method, request.path)
        if isinstance(found, set):
            if not found:
                return None
            return Response(b"", status=405, headers={"Allow": ", ".join(sorted(found))})
        function, groups = found
        script_request = ScriptRequest(
            method=request.method,
            path=request.path,
            groups=groups,
            args=dict(request.args.items()),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.get_data(),
            username=getattr(g, "username", ""),
        )
        try:
            answer = function(script_request)
        except Exception as exc:
            log.exception("script route %s %s failed", request.method, request.path)
            raise InternalError(f"The script serving this URI failed: {exc}") from exc
        response = Response(answer.body, status=answer.status, content_type=answer.content_type)
        for key, value in answer.headers.items():
            response.headers[key] = value
        return response

    return routes


def script_routes(app: Flask) -> ScriptRoutes:
    """The table of ``app``'s script routes."""
    routes: ScriptRoutes = app.extensions[EXTENSION]
    return routes
