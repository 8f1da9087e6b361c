"""Turns every error into Orthanc's answer, in one place.

Orthanc answers an unknown route with a JSON error body, but an unknown resource ID with an
empty 404 (its handler sends nothing); clients and tests rely on both. Errors say which they
are through ``empty_body``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from ..errors import BadFileFormat, DicomdError, InternalError, UnknownResource

log = logging.getLogger(__name__)


def error_body(error: DicomdError, *, method: str, uri: str) -> dict[str, Any]:
    """Orthanc's JSON error body."""
    body: dict[str, Any] = {
        "HttpError": error.http_error,
        "HttpStatus": error.http_status,
        "Message": error.orthanc_message,
        "Method": method,
        "OrthancError": error.orthanc_message,
        "OrthancStatus": error.orthanc_code,
        "Uri": uri,
    }
    if error.details and error.details != error.orthanc_message:
        body["Details"] = error.details
    return body


def error_text(error: DicomdError, *, method: str, uri: str, describe: bool) -> bytes:
    """What an error answers: Orthanc's JSON body, or nothing when the error has none or
    ``HttpDescribeErrors`` is off."""
    if error.empty_body or not describe:
        return b""
    return json.dumps(error_body(error, method=method, uri=uri), indent=3, sort_keys=True).encode()


def error_response(error: DicomdError) -> Response:
    describe = current_app.config.get("DESCRIBE_ERRORS", True)
    text = error_text(error, method=request.method, uri=request.path, describe=describe)
    if not text:
        return Response(b"", status=error.http_status)
    return Response(text, status=error.http_status, mimetype="application/json")


class UnknownRoute(UnknownResource):
    """No endpoint at this URI: unlike an unknown ID, Orthanc describes this one."""

    empty_body = False


def error_to_answer(exc: Exception, *, method: str, uri: str) -> DicomdError:
    """The error a request that raised ``exc`` answers, logged as it deserves: a dicomd
    error as itself (logged if a server error), anything else as an internal error, with
    its traceback. Flask's handlers and the direct routes (``direct.py``) both use it."""
    if isinstance(exc, DicomdError):
        if exc.http_status >= 500:
            log.error("%s %s failed: %s", method, uri, exc)
        return exc
    log.exception("unexpected error in %s %s", method, uri, exc_info=exc)
    return InternalError(f"{type(exc).__name__}: {exc}")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DicomdError)
    def on_dicomd_error(error: DicomdError) -> Response:
        return error_response(error_to_answer(error, method=request.method, uri=request.path))

    @app.errorhandler(NotFound)
    def on_not_found(_error: NotFound) -> Response:
        return error_response(UnknownRoute())

    @app.errorhandler(MethodNotAllowed)
    def on_method_not_allowed(error: MethodNotAllowed) -> Response:
        # As Orthanc: no body, no Content-Type, and the methods the URI serves (not the
        # HEAD and OPTIONS that Flask adds on its own).
        response = Response(b"", status=405)
        del response.headers["Content-Type"]
        methods = sorted(set(error.valid_methods or ()) - {"HEAD", "OPTIONS"})
        if methods:
            response.headers["Allow"] = ",".join(methods)
        return response

    @app.errorhandler(HTTPException)
    def on_http_exception(error: HTTPException) -> Any:
        if error.code == 413:
            return error_response(BadFileFormat("The request body is too large"))
        return error.get_response()

    @app.errorhandler(Exception)
    def on_unexpected(error: Exception) -> Response:
        return error_response(error_to_answer(error, method=request.method, uri=request.path))
