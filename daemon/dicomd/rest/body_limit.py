"""A size limit on the request bodies that views read whole (metadata values, JSON bodies,
script routes...), applied before any byte of the body is read: one client declaring a
100 MiB metadata value, or several, must not take the memory of the daemon.

Bodies that are streamed, or have their own limit, are not counted: DICOM uploads
(``POST /instances``, ``…/store-straight``), and attachments (``MaximumAttachmentSize``).
A body over the limit answers 413 and the connection is closed, its body unread; a chunked
body (no ``Content-Length``) is read up to the limit, then refused the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import PayloadTooLarge
from .errors import error_text

# Method and path of the requests whose bodies are not read whole, or are limited elsewhere.
_EXEMPT = re.compile(
    r"^(?:POST /instances"
    r"|POST /(?:peers|modalities)/[^/]+/store-straight"
    r"|PUT /(?:patients|studies|series|instances)/[^/]+/attachments/[^/]+)$"
)


class _LimitedInput:
    """A chunked body, refused once it passes ``limit`` bytes."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._left = limit

    def read(self, size: int | None = None) -> bytes:
        # cheroot's chunked stream reads everything for None, nothing for -1.
        data = self._stream.read(None if size is None or size < 0 else size)
        self._count(len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._stream.readline(size)
        self._count(len(data))
        return data

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def _count(self, size: int) -> None:
        self._left -= size
        if self._left < 0:
            raise _too_large(None)


def _too_large(length: int | None) -> PayloadTooLarge:
    what = f"{length} bytes" if length is not None else "a chunked body over the limit"
    return PayloadTooLarge(f"The request body is too large ({what}); see HttpMaximumBodySize")


class BodyLimit:
    """WSGI middleware refusing request bodies over ``limit`` bytes (0: no limit)."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], limit: int, describe: bool = True
    ) -> None:
        self.app = app
        self.limit = limit
        self.describe = describe

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.limit and not self._exempt(environ):
            length = environ.get("CONTENT_LENGTH")
            if length and length.isdigit():
                if int(length) > self.limit:
                    return self._refuse(environ, start_response, int(length))
            elif "wsgi.input" in environ and _chunked(environ):
                environ["wsgi.input"] = _LimitedInput(environ["wsgi.input"], self.limit)
        return self.app(environ, start_response)

    @staticmethod
    def _exempt(environ: dict[str, Any]) -> bool:
        return bool(_EXEMPT.match(f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"))

    def _refuse(
        self, environ: dict[str, Any], start_response: Callable[..., Any], length: int
    ) -> Iterable[bytes]:
        method, uri = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        text = error_text(_too_large(length), method=method, uri=uri, describe=self.describe)
        headers = [("Content-Length", str(len(text))), ("Connection", "close")]
        if text:
            headers.append(("Content-Type", "application/json"))
        start_response("413 Payload Too Large", headers)
        return [text]


def _chunked(environ: dict[str, Any]) -> bool:
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
