"""The REST API called from inside the daemon (Lua's ``RestApiGet`` and friends, Python's
``orthanc.RestApiGet``): the same Flask app, through WSGI, without a socket, so a script that
calls the API from a callback can never deadlock on the HTTP server's threads.

The routes scripts call for each instance (a metadata value: read, write, delete; an upload)
are reached directly (see ``direct.py``): such a call costs no WSGI environ, request context
or response object. Measured with a Lua ``OnStoredInstance`` that writes one metadata value,
the Flask machinery was about a third of the callback's cost.
"""

from __future__ import annotations

import io
import logging
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from ..domain.model import Origin
from ..scripting.routes import ScriptRoutes
from ..services import RestAnswer
from .common import normalise_path
from .direct import ORIGIN_KEY, DirectRequest, DirectRoutes
from .script_routes import BUILTIN_KEY, script_routes

if TYPE_CHECKING:
    from flask import Flask

    from ..services import Services

log = logging.getLogger(__name__)


class InProcessRest:
    """Calls the daemon's own REST API; authentication does not apply (the caller is the
    daemon), and uploads get ``origin`` ("Lua", "Plugins") as their Origin metadata."""

    def __init__(self, app: Flask, services: Services) -> None:
        self._app = app
        self._routes = DirectRoutes(app, services)

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
        answer = self._direct(method.upper(), uri, body, headers or {}, origin, builtin)
        if answer is not None:
            return answer
        environ = _environ(method, uri, body, headers or {})
        environ[ORIGIN_KEY] = origin
        if builtin:
            environ[BUILTIN_KEY] = True
        started: list[Any] = []

        def start_response(status: str, response_headers: Any, exc_info: Any = None) -> Any:
            started[:] = [status, response_headers]
            return lambda _data: None

        app_iter = self._app.wsgi_app(environ, start_response)
        try:
            data = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        status, response_headers = started
        return RestAnswer(int(status.split(" ", 1)[0]), data, dict(response_headers))

    def _direct(
        self,
        method: str,
        uri: str,
        body: bytes,
        headers: dict[str, str],
        origin: str,
        builtin: bool,
    ) -> RestAnswer | None:
        """The answer of the route's direct view, if it has one; None: go through WSGI."""
        path, _, query = uri.partition("?")
        if query or "%" in path:
            return None
        path = normalise_path(path)
        lowered = {k.lower(): v for k, v in headers.items()}
        found = self._routes.find(method, path, lowered.get("content-type", ""), builtin)
        if found is None:
            return None
        view, args = found
        request = DirectRequest(args, body, lowered, Origin(request_origin=origin))
        return self._routes.call(view, request, method, path)

    @property
    def script_routes(self) -> ScriptRoutes:
        """Where scripts add their REST routes (served before the built-in ones)."""
        return script_routes(self._app)


def _environ(method: str, uri: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The WSGI environ of a request made from inside the daemon. Built here rather than by
    werkzeug's test ``EnvironBuilder``, which costs as much again as the request itself:
    scripts call the API once or more per instance."""
    path, _, query = uri.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method.upper(),
        "SCRIPT_NAME": "",
        # WSGI: the path percent-decoded, its bytes carried as latin-1.
        "PATH_INFO": unquote_to_bytes(path or "/").decode("latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = value
    return environ
