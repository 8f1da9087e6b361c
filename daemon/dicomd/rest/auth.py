"""HTTP Basic authentication against ``RegisteredUsers`` when ``AuthenticationEnabled``."""

from __future__ import annotations

import hmac

from flask import Flask, Response, g, request

from ..config import Config
from ..events.handlers import Filters
from .inprocess import ORIGIN_KEY

REALM = "dicomd"


def check_credentials(users: dict[str, str], username: str, password: str) -> bool:
    expected = users.get(username)
    # Compare in constant time, and spend the same time for an unknown user.
    return hmac.compare_digest((expected or "\0").encode(), password.encode()) and (
        expected is not None
    )


def install_auth(app: Flask, config: Config, filters: Filters) -> None:
    users = dict(config.registered_users)
    enabled = config.authentication_enabled

    @app.before_request
    def authenticate() -> Response | None:
        g.username = ""
        if ORIGIN_KEY in request.environ:
            return None  # a call from inside the daemon (a script)
        if not enabled:
            return _filter(filters)
        auth = request.authorization
        if (
            auth is not None
            and auth.type == "basic"
            and check_credentials(users, auth.username or "", auth.password or "")
        ):
            g.username = auth.username or ""
            return _filter(filters)
        response = Response(b"", status=401)
        response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
        return response


def _filter(filters: Filters) -> Response | None:
    """The HTTP request filters (Lua ``IncomingHttpRequestFilter``): a refusal is a 403.
    As in Orthanc, only GET, POST, PUT and DELETE are filtered."""
    if not filters.has("http") or request.method not in ("GET", "POST", "PUT", "DELETE"):
        return None
    headers = {k.lower(): v for k, v in request.headers.items()}
    ip = request.remote_addr or ""
    if filters.allow_http(request.method, request.path, ip, g.username, headers):
        return None
    return Response(b"", status=403)
