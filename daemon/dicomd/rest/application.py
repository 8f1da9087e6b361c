"""The REST API: ``create_app(services)`` builds the Flask app, one blueprint per area."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from flask import Flask

from .auth import install_auth
from .body_limit import BodyLimit
from .common import normalise_path
from .direct import DirectHttp
from .errors import register_error_handlers
from .script_routes import install_script_routes

if TYPE_CHECKING:
    from ..services import Services


class _OrthancRequest:
    """Rewrites a request the way Orthanc reads it, before any routing (direct or Flask):

    - repeated slashes mean one slash and a trailing slash is ignored, answered directly,
      without a redirect, since clients that join URLs produce them;
    - a method faked for clients that can only GET or POST: the ``X-HTTP-Method-Override``
      header (on any request), or ``?_method=`` on a GET. Only PUT and DELETE may be faked;
      anything else is a 400 without a body, as in Orthanc.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ["PATH_INFO"] = normalise_path(environ.get("PATH_INFO", ""))
        faked = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE")
        if faked is None and environ.get("REQUEST_METHOD") == "GET":
            query = environ.get("QUERY_STRING", "")
            if "_method" in query:
                faked = next(iter(parse_qs(query).get("_method", [])), None)
        if faked:
            method = faked.strip().upper()
            if method not in ("PUT", "DELETE"):
                start_response("400 Bad Request", [("Content-Length", "0")])
                return [b""]
            environ["REQUEST_METHOD"] = method
        return self.app(environ, start_response)


def create_app(services: Services) -> Flask:
    """The Flask application serving the REST API of ``services``."""
    from . import (
        archives,
        attachments,
        changes,
        content,
        events,
        instances,
        jobs,
        metadata,
        modalities,
        peers,
        resources,
        scripts,
        system,
        tools,
    )

    app = Flask("dicomd")
    app.config["DESCRIBE_ERRORS"] = services.config.http_describe_errors
    app.config["JSON_SORT_KEYS"] = True
    app.extensions["dicomd"] = services
    app.url_map.strict_slashes = False
    register_error_handlers(app)
    install_auth(app, services.config, services.filters)
    install_script_routes(app)  # after auth: script routes share it
    app.register_blueprint(system.blueprint)
    app.register_blueprint(tools.blueprint)
    app.register_blueprint(instances.blueprint)
    app.register_blueprint(content.blueprint)
    app.register_blueprint(resources.blueprint)
    app.register_blueprint(metadata.blueprint)
    app.register_blueprint(attachments.blueprint)
    app.register_blueprint(archives.blueprint)
    app.register_blueprint(changes.blueprint)
    app.register_blueprint(events.blueprint)
    app.register_blueprint(modalities.blueprint)
    app.register_blueprint(peers.blueprint)
    app.register_blueprint(jobs.blueprint)
    app.register_blueprint(scripts.blueprint)
    flask_app = app.wsgi_app
    limit = services.config.http_maximum_body_size * 1024 * 1024  # megabytes
    direct = DirectHttp(app, services, flask_app)
    app.wsgi_app = _OrthancRequest(  # type: ignore[method-assign]
        BodyLimit(direct, limit, services.config.http_describe_errors)
    )  # type: ignore[method-assign]
    return app
