"""The HTTP client that talks to peers: ``POST /instances`` and ``GET`` of their API, with
one kept-alive connection per peer and thread."""

from __future__ import annotations

import base64
import gzip
import http.client
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from .definition import Peer


class SendError(Exception):
    """A request to a peer failed. ``retryable``: worth trying again later (the peer is
    down, overloaded or timed out); otherwise it would fail again the same way (4xx)."""

    def __init__(self, message: str, retryable: bool, status: int = 0) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


@dataclass
class Answer:
    status: int
    body: bytes


_RETRYABLE_STATUSES = {408, 425, 429}


class PeerClient:
    def __init__(self) -> None:
        self._local = threading.local()

    def _connection(self, peer: Peer) -> http.client.HTTPConnection:
        pool: dict[tuple[str, float], http.client.HTTPConnection] = (
            getattr(self._local, "pool", None) or {}
        )
        self._local.pool = pool
        key = (peer.url, peer.timeout)
        conn = pool.get(key)
        if conn is None:
            parts = urlsplit(peer.url)
            cls = (
                http.client.HTTPSConnection
                if parts.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = cls(parts.netloc, timeout=peer.timeout)
            pool[key] = conn
        return conn

    def _forget(self, peer: Peer) -> None:
        pool = getattr(self._local, "pool", {})
        conn = pool.pop((peer.url, peer.timeout), None)
        if conn is not None:
            conn.close()

    def close_thread_connections(self) -> None:
        """Close the connections this thread kept alive (a job worker that ends)."""
        for conn in getattr(self._local, "pool", {}).values():
            conn.close()
        self._local.pool = {}

    def request(
        self,
        peer: Peer,
        method: str,
        path: str,
        body: bytes = b"",
        compress: bool = False,
        keep_alive: bool = False,
    ) -> Answer:
        """One request; SendError for a transport failure or an error status.
        ``keep_alive``: keep the connection for this thread's next request to the peer
        (job workers; they call :meth:`close_thread_connections` when they end)."""
        try:
            return self._request(peer, method, path, body, compress)
        finally:
            if not keep_alive:
                self._forget(peer)

    def _request(self, peer: Peer, method: str, path: str, body: bytes, compress: bool) -> Answer:
        headers = dict(peer.headers)
        if peer.username:
            token = base64.b64encode(f"{peer.username}:{peer.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if compress and body:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        if method in ("POST", "PUT"):
            headers["Content-Type"] = "application/dicom"
        base = urlsplit(peer.url).path.rstrip("/")
        for attempt in (1, 2):  # a kept-alive connection the peer closed: reconnect once
            conn = self._connection(peer)
            try:
                conn.request(method, base + path, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self._forget(peer)
                if attempt == 2 or not isinstance(
                    exc, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError
                ):
                    raise SendError(f"{peer.name} ({peer.url}): {exc}", retryable=True) from exc
        if response.status >= 400:
            retryable = response.status >= 500 or response.status in _RETRYABLE_STATUSES
            text = data[:300].decode("utf-8", "replace")
            raise SendError(
                f"{peer.name} answered {response.status}: {text}", retryable, response.status
            )
        return Answer(response.status, data)
