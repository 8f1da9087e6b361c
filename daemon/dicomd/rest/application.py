"""The REST API: ``create_app(services)`` builds the Flask app, one blueprint per area."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask

from .auth import install_auth
from .common import normalise_path
from .direct import DirectHttp
from .errors import register_error_handlers
from .script_routes import install_script_routes

if TYPE_CHECKING:
    from ..services import Services


class _NormalisePath:
    """Repeated slashes mean one slash and a trailing slash is ignored, as in Orthanc;
    answered directly, without a redirect, since clients that join URLs produce them."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ["PATH_INFO"] = normalise_path(environ.get("PATH_INFO", ""))
        return self.app(environ, start_response)


def create_app(services: Services) -> Flask:
    """The Flask application serving the REST API of ``services``."""
    from . import (
        attachments,
        changes,
        events,
        instances,
        jobs,
        metadata,
        peers,
        resources,
        scripts,
        system,
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
    app.register_blueprint(instances.blueprint)
    app.register_blueprint(resources.blueprint)
    app.register_blueprint(metadata.blueprint)
    app.register_blueprint(attachments.blueprint)
    app.register_blueprint(changes.blueprint)
    app.register_blueprint(events.blueprint)
    app.register_blueprint(peers.blueprint)
    app.register_blueprint(jobs.blueprint)
    app.register_blueprint(scripts.blueprint)
    flask_app = app.wsgi_app
    app.wsgi_app = _NormalisePath(DirectHttp(app, services, flask_app))  # type: ignore[method-assign]
    return app
