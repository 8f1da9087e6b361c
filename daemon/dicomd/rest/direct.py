"""Direct routes: the few views called once or more per instance, reached without Flask.

Such a view is a function of the request's parts (:class:`DirectRequest`) answering a
:class:`RestAnswer`; its Flask view only adapts it, so both ways answer the same. Two
callers use the direct form:

- scripts' in-process calls (``RestApiPut`` of a metadata value from ``OnStoredInstance``,
  an upload from Lua), through :class:`~dicomd.rest.inprocess.InProcessRest`;
- HTTP requests, through :class:`DirectHttp`, when nothing but the view itself has a say:
  no authentication, no HTTP filter, no script route on that URI. ``POST /instances``
  then costs about 0.2 ms of CPU less (Flask's request context, hooks and response
  objects), out of 2.5–3 ms for a 512 KiB instance.

Which view serves a path is decided by the Flask app's own URL map, so routing stays in one
place. A multipart body goes through Flask, which parses forms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from ..domain.model import Origin
from ..services import RestAnswer
from .script_routes import script_routes
from .server import known_length, read_body

if TYPE_CHECKING:
    from flask import Flask

    from ..services import Services

log = logging.getLogger(__name__)

# WSGI environ key that tells the views a request comes from inside the daemon.
ORIGIN_KEY = "dicomd.request_origin"


@dataclass(frozen=True)
class DirectRequest:
    """What a direct view gets of a request: URL arguments, body, headers (by lower-case
    name) and who sent it (an instance's Origin metadata)."""

    args: dict[str, str]
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    origin: Origin = field(default_factory=Origin)


DirectView = Callable[["Services", DirectRequest], RestAnswer]
_DIRECT: dict[str, DirectView] = {}


def direct(endpoint: str) -> Callable[[DirectView], DirectView]:
    """Register ``function`` as the direct form of the Flask view named ``endpoint``
    (``blueprint.function``)."""

    def register(function: DirectView) -> DirectView:
        _DIRECT[endpoint] = function
        return function

    return register


class DirectRoutes:
    """Finds the direct view serving a request, and calls it."""

    def __init__(self, app: Flask, services: Services) -> None:
        self._app = app
        self._services = services
        self._map = app.url_map.bind("localhost")

    def find(
        self, method: str, path: str, content_type: str, builtin: bool = False
    ) -> tuple[DirectView, dict[str, str]] | None:
        """The view and its URL arguments, or None: Flask serves this request.

        ``path`` is normalised (see ``common.normalise_path``); ``builtin``: a script's
        route on this URI does not count (Orthanc's ``RestApiGet`` as opposed to
        ``RestApiGetAfterPlugins``)."""
        if content_type.lower().startswith("multipart/"):
            return None
        routes = script_routes(self._app)
        if routes and not builtin and routes.match(method, path):
            return None  # a script serves this URI (or answers 405 for another method)
        try:
            endpoint, args = self._map.match(path, method)
        except (HTTPException, RequestRedirect):
            return None  # unknown route or method: Flask answers the error
        view = _DIRECT.get(str(endpoint))
        return None if view is None else (view, dict(args))

    def call(self, view: DirectView, request: DirectRequest, method: str, path: str) -> RestAnswer:
        """The view's answer; an error answers what the app's error handlers would."""
        try:
            answer = view(self._services, request)
        except Exception as exc:
            answer = self.failure(exc, method, path)
        # What Flask answers when a response names no type.
        answer.headers.setdefault("Content-Type", "text/html; charset=utf-8")
        return answer

    def failure(self, exc: Exception, method: str, path: str) -> RestAnswer:
        """What the app's error handlers answer for ``exc`` (see ``errors.py``)."""
        from .errors import error_text, error_to_answer  # errors.py imports Flask's app

        error = error_to_answer(exc, method=method, uri=path)
        describe = bool(self._app.config.get("DESCRIBE_ERRORS", True))
        text = error_text(error, method=method, uri=path, describe=describe)
        headers = {"Content-Type": "application/json"} if text else {}
        return RestAnswer(error.http_status, text, headers)


_HTTP_METHODS = ("GET", "POST", "PUT", "DELETE")  # HEAD and OPTIONS: Flask's own answers


class DirectHttp:
    """WSGI middleware serving direct routes' HTTP requests, when only the view has a say:
    with authentication on, or an HTTP filter installed, every request goes through Flask,
    where both are applied."""

    def __init__(
        self, app: Flask, services: Services, wsgi_app: Callable[..., Iterable[bytes]]
    ) -> None:
        self._routes = DirectRoutes(app, services)
        self._services = services
        self._next = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        found = self._find(environ)
        if found is None:
            return self._next(environ, start_response)
        view, args, headers, path = found
        method = environ["REQUEST_METHOD"]
        try:
            body = read_body(environ) or b""
        except Exception as exc:  # a client gone mid-body, as a Flask view would meet it
            answer = self._routes.failure(exc, method, path)
        else:
            origin = Origin(request_origin="RestApi", remote_ip=environ.get("REMOTE_ADDR", ""))
            request = DirectRequest(args, body, headers, origin)
            answer = self._routes.call(view, request, method, path)
        payload = answer.body
        response_headers = [(k, v) for k, v in answer.headers.items() if k != "Content-Length"]
        response_headers.append(("Content-Length", str(len(payload))))
        start_response(f"{answer.status} {_reason(answer.status)}", response_headers)
        return [payload]

    def _find(
        self, environ: dict[str, Any]
    ) -> tuple[DirectView, dict[str, str], dict[str, str], str] | None:
        method = environ.get("REQUEST_METHOD", "")
        if method not in _HTTP_METHODS or environ.get("QUERY_STRING") or ORIGIN_KEY in environ:
            return None  # in-process calls that come this way are meant for Flask
        if not known_length(environ):
            return None  # a chunked body: Flask reads it
        if self._services.config.authentication_enabled or self._services.filters.has("http"):
            return None
        # WSGI carries the path's bytes as latin-1; they are UTF-8, as Flask reads them.
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        found = self._routes.find(method, path, environ.get("CONTENT_TYPE", ""))
        if found is None:
            return None
        headers = {key.lower(): value for key, value in EnvironHeaders(environ).items()}
        return (*found, headers, path)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
