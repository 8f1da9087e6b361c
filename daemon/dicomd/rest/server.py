"""The production WSGI server (cheroot, CherryPy's threaded server) behind the Flask app."""

from __future__ import annotations

import io
import logging
import select
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from cheroot import server, wsgi
from cheroot.makefile import MakeFile

from .balance import ConnectionShares

# The cheroot server's attribute holding the processes' connection shares.
SHARES_ATTRIBUTE = "dicomd_connection_shares"

log = logging.getLogger(__name__)


class _LeadingSlashesReader:
    """Reads the request line so that ``POST //instances`` means ``POST /instances``.

    Clients that join a base URL and a path send such targets; HTTP would read ``//x`` as a
    network-path reference (an absolute URI) and refuse it, Orthanc serves it."""

    def __init__(self, rfile: Any) -> None:
        self._rfile = rfile

    def readline(self, *args: Any) -> bytes:
        line: bytes = self._rfile.readline(*args)
        parts = line.split(b" ", 2)
        if len(parts) == 3 and parts[1].startswith(b"//"):
            parts[1] = b"/" + parts[1].lstrip(b"/")
            line = b" ".join(parts)
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rfile, name)


class _Request(server.HTTPRequest):
    def read_request_line(self) -> bool:
        original = self.rfile
        self.rfile = _LeadingSlashesReader(original)
        try:
            return bool(super().read_request_line())
        finally:
            self.rfile = original

    def send_headers(self) -> None:
        conn = self.conn
        if (
            not self.close_connection
            and self._body_consumed()
            and isinstance(conn, _Connection)
            and conn.should_leave()
        ):
            self.close_connection = True  # "Connection: close": the client reconnects
        super().send_headers()

    def _body_consumed(self) -> bool:
        """Whether the request's body was read to its end: closing on a client still
        sending would reset the connection under it, losing the answer."""
        return not self.chunked_read and not getattr(self.rfile, "remaining", 0)


class _Connection(server.HTTPConnection):
    """Counts itself in the processes' shares of busy connections, when there are several."""

    RequestHandlerClass = _Request
    LINGER_SECONDS = 0.005

    def __init__(self, http_server: Any, sock: Any, makefile: Any = None) -> None:
        super().__init__(http_server, sock, makefile or MakeFile)
        self._shares: ConnectionShares | None = getattr(http_server, SHARES_ATTRIBUTE, None)

    def should_leave(self) -> bool:
        return self._shares is not None and self._shares.served(id(self))

    def communicate(self) -> bool:
        """Serve the connection's requests (cheroot calls this when it has one to read).

        After an answer, the thread waits up to ``LINGER_SECONDS`` for the client's next
        request and serves it too, rather than handing the connection back at once to
        cheroot's selector thread, which would pass it to another worker when it next has
        something to read: two thread hand-overs and a selector round trip per request,
        about 0.1 ms of CPU per upload, measured. It lingers only while other workers are
        idle and no connection waits for one, so no request ever waits behind it."""
        while True:
            keep = self._serve_one()
            if not keep:
                return False
            if not self.server.ready:
                return True  # stopping: cheroot closes its connections
            if self.rfile.has_data():
                continue  # the next request is buffered already
            pool = self.server.requests
            if pool.qsize or pool.idle < 2:
                return True
            if not self._next_request_within(self.LINGER_SECONDS):
                return True

    def _next_request_within(self, seconds: float) -> bool:
        """Whether the client sends something (or closes) within ``seconds``. ``poll``, not
        ``select``, which fails on descriptors above 1023."""
        poller = select.poll()
        poller.register(self.socket.fileno(), select.POLLIN)
        return bool(poller.poll(seconds * 1000))

    def _serve_one(self) -> bool:
        shares = self._shares
        if shares is None:
            return bool(super().communicate())
        shares.request_started(id(self))
        try:
            return bool(super().communicate())
        finally:
            shares.request_ended(id(self))

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._shares is not None:
                self._shares.closed(id(self))
                self._shares = None


def known_length(environ: dict[str, Any]) -> bool:
    """Whether the request body is cheroot's known-length stream (a ``Content-Length``, or
    no body), which :func:`read_body` reads directly; a chunked body is not."""
    return isinstance(environ.get("wsgi.input"), server.KnownLengthRFile)


def read_body(environ: dict[str, Any]) -> bytes | None:
    """The request body read straight into one buffer, or None if the server's input stream
    is not cheroot's known-length stream (then the caller reads it the usual way).

    cheroot's own ``read()`` goes through a pure-Python buffered reader in small chunks, which
    costs more CPU than the rest of an upload; ``readinto`` lets the socket fill our buffer.
    The buffer is a ``BytesIO``'s, grown to the body's size: once filled, ``getvalue()``
    hands it over as the ``bytes`` it already is, where ``bytes(bytearray)`` would copy the
    whole body (into fresh memory: about 0.45 ms for 512 KiB, measured).
    """
    if not known_length(environ):
        return None
    stream = environ["wsgi.input"]
    size = stream.remaining or 0
    data = _receive(stream, size)
    if len(data) < size:
        raise ConnectionError("the client closed the connection before sending its whole body")
    return data


def body_chunks(environ: dict[str, Any], length: int, chunk_size: int) -> Iterator[bytes]:
    """The first ``length`` bytes of the request body, read lazily ``chunk_size`` at a time
    (straight from the socket with cheroot, as :func:`read_body` does), so that a large body
    never sits whole in memory. A client that stops early is a ConnectionError."""
    stream = environ["wsgi.input"]
    direct = isinstance(stream, server.KnownLengthRFile)
    left = length
    while left > 0:
        size = min(chunk_size, left)
        chunk = _receive(stream, size) if direct else stream.read(size)
        if not chunk:
            raise ConnectionError("the client closed the connection before sending its whole body")
        left -= len(chunk)
        yield chunk


def _receive(stream: Any, size: int) -> bytes:
    """Up to ``size`` bytes from cheroot's known-length stream (fewer only if the client
    stops), received straight into the ``bytes`` object returned."""
    if size <= 0:
        return b""
    buffer = io.BytesIO()
    buffer.seek(size - 1)
    buffer.write(b"\0")
    received = _read_into(stream, buffer.getbuffer())
    if received < size:
        buffer.truncate(received)
    return buffer.getvalue()


def _read_into(stream: Any, view: memoryview) -> int:
    """Fill ``view`` from cheroot's known-length stream; returns how much arrived.

    ``readinto1``, not ``readinto``: cheroot's reader is ``_pyio.BufferedReader``, whose
    ``readinto`` fails ("lvalue and rvalue have different structures") when it refills its
    buffer with more than the space left in ``view`` (the body continues past a chunk)."""
    received = 0
    while received < len(view):
        count = stream.rfile.readinto1(view[received:])
        if not count:
            break
        received += count
    stream.remaining -= received
    view.release()
    return received


def discard_body(environ: dict[str, Any]) -> None:
    """Read and drop what is left of the request body, a chunk at a time, so that the
    connection can serve the next request (cheroot would otherwise read it in one piece)."""
    stream = environ.get("wsgi.input")
    if isinstance(stream, server.KnownLengthRFile):
        for _chunk in body_chunks(environ, stream.remaining or 0, 1024 * 1024):
            pass


class PortReservation:
    """The daemon's port, held by the main process while the helper processes serve it: a
    socket bound with ``SO_REUSEPORT`` but not listening, so that no connection is ever
    placed on it, and no other program can take the port (0: a free one is picked)."""

    def __init__(self, host: str, port: int) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self._socket.bind((host, port))
        except OSError:
            self._socket.close()
            raise
        self.port = int(self._socket.getsockname()[1])

    def close(self) -> None:
        self._socket.close()


class HttpServer:
    """Serves a WSGI app on ``host:port`` from a pool of threads, in the background.

    With ``reuse_port``, the socket is bound with ``SO_REUSEPORT``, so that the other
    processes of the daemon bind the same port and the kernel shares connections out
    among them (a socket inherited by all of them would let one process take nearly every
    connection); ``shares`` then keeps the processes' numbers of connections even.
    """

    def __init__(
        self,
        app: Callable[..., Any],
        host: str,
        port: int,
        threads: int,
        reuse_port: bool = False,
        shares: ConnectionShares | None = None,
    ) -> None:
        self._server = wsgi.Server(
            (host, port),
            app,
            numthreads=threads,
            server_name="dicomd",
            request_queue_size=128,
            timeout=60,
            shutdown_timeout=5,
            reuse_port=reuse_port,
        )
        self._server.ConnectionClass = _Connection
        setattr(self._server, SHARES_ATTRIBUTE, shares)
        self._shares = shares
        self._thread: threading.Thread | None = None

    @property
    def socket(self) -> socket.socket:
        """The listening socket (once started)."""
        return self._server.socket  # type: ignore[no-any-return]

    @property
    def port(self) -> int:
        address = self._server.bind_addr
        assert isinstance(address, tuple)
        return int(address[1])

    def bind(self) -> None:
        """Bind and listen (so the port is known, even port 0), without serving yet."""
        if not self._server.ready:
            self._server.prepare()
            if self._shares is not None:
                self._shares.listening()

    def start(self) -> None:
        """Serve in a background thread (binding first if needed)."""
        self.bind()
        self._thread = threading.Thread(target=self._server.serve, name="http-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._shares is not None:
            self._shares.close()
