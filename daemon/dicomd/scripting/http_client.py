"""The HTTP client behind Lua's ``HttpGet/Post/Put/Delete``, with Orthanc's return
conventions. Standard library only (urllib): scripts make a few calls, not a crawl."""

from __future__ import annotations

import base64
import logging
import urllib.error
import urllib.request

log = logging.getLogger(__name__)


class HttpClient:
    """One client per Lua runtime, as in Orthanc: credentials and timeout persist across
    calls; headers are given per call."""

    def __init__(self) -> None:
        self.timeout: float = 60.0
        self._authorization: str | None = None
        # No proxy from the environment: Orthanc uses only its own HttpProxy setting.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def set_credentials(self, username: str, password: str) -> None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._authorization = f"Basic {token}"

    def set_timeout(self, seconds: float) -> None:
        """0 means no timeout, as in Orthanc."""
        self.timeout = float(seconds)

    def request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes] | None:
        """``(status, body)`` whatever the status; ``None`` when the transport failed."""
        request = urllib.request.Request(url, data=body, method=method)
        if self._authorization is not None:
            request.add_header("Authorization", self._authorization)
        for key, value in headers.items():
            request.add_header(key, value)
        try:
            with self._opener.open(request, timeout=self.timeout or None) as answer:
                return int(answer.status), answer.read()
        except urllib.error.HTTPError as error:
            with error:
                return int(error.code), error.read()
        except (OSError, ValueError) as error:
            log.error("Lua %s %s failed: %s", method, url, error)
            return None

    def lua_call(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> bytes | None:
        """Orthanc's answer: the body for GET, POST and PUT even on a 4xx or 5xx status;
        for DELETE, ``"SUCCESS"`` on 2xx and nil otherwise; nil when the transport fails."""
        answer = self.request(method, url, body, headers)
        if answer is None:
            return None
        status, data = answer
        if method == "DELETE":
            return b"SUCCESS" if 200 <= status < 300 else None
        return data
