"""The REST API called from inside the daemon (Lua's ``RestApiGet`` and friends, Python's
``orthanc.RestApiGet``): the same Flask app, through WSGI, without a socket, so a script that
calls the API from a callback can never deadlock on the HTTP server's threads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from werkzeug.test import EnvironBuilder, run_wsgi_app

from ..scripting.api import RestAnswer
from ..scripting.routes import ScriptRoutes
from .script_routes import BUILTIN_KEY, script_routes

if TYPE_CHECKING:
    from flask import Flask

# WSGI environ keys that tell the views a request comes from inside the daemon.
ORIGIN_KEY = "dicomd.request_origin"


class InProcessRest:
    """Calls the daemon's own REST API; authentication does not apply (the caller is the
    daemon), and uploads get ``origin`` ("Lua", "Plugins") as their Origin metadata."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def call(
        self,
        method: str,
        uri: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        origin: str = "Plugins",
        builtin: bool = False,
    ) -> RestAnswer:
        """``builtin``: the built-in API only, without the routes scripts added."""
        path, _, query = uri.partition("?")
        builder = EnvironBuilder(
            path=path or "/",
            query_string=query,
            method=method.upper(),
            data=body,
            headers=list((headers or {}).items()),
        )
        environ = builder.get_environ()
        environ[ORIGIN_KEY] = origin
        if builtin:
            environ[BUILTIN_KEY] = True
        app_iter, status, response_headers = run_wsgi_app(self._app.wsgi_app, environ)
        try:
            data = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        return RestAnswer(int(status.split(" ", 1)[0]), data, dict(response_headers.items()))

    @property
    def script_routes(self) -> ScriptRoutes:
        """Where scripts add their REST routes (served before the built-in ones)."""
        return script_routes(self._app)
