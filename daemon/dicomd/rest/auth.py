"""HTTP Basic authentication against ``RegisteredUsers`` when ``AuthenticationEnabled``."""

from __future__ import annotations

import hmac

from flask import Flask, Response, g, request

from ..config import Config

REALM = "dicomd"


def check_credentials(users: dict[str, str], username: str, password: str) -> bool:
    expected = users.get(username)
    # Compare in constant time, and spend the same time for an unknown user.
    return hmac.compare_digest((expected or "\0").encode(), password.encode()) and (
        expected is not None
    )


def install_auth(app: Flask, config: Config) -> None:
    users = dict(config.registered_users)
    enabled = config.authentication_enabled

    @app.before_request
    def authenticate() -> Response | None:
        g.username = ""
        if not enabled:
            return None
        auth = request.authorization
        if (
            auth is not None
            and auth.type == "basic"
            and check_credentials(users, auth.username or "", auth.password or "")
        ):
            g.username = auth.username or ""
            return None
        response = Response(b"", status=401)
        response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
        return response
