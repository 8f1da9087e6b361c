"""An Orthanc peer as ``OrthancPeers`` and ``PUT /peers/{name}`` define it, in all of
Orthanc's forms: ``[url]``, ``[url, user, password]``, or an object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import BadRequest

_OBJECT_KEYS = {
    "Url",
    "Username",
    "Password",
    "HttpHeaders",
    "Timeout",
    "MaxRetries",
    "CertificateFile",
    "CertificateKeyFile",
    "CertificateKeyPassword",
    "Pkcs11",
}


@dataclass(frozen=True)
class Peer:
    name: str
    url: str  # without a trailing slash
    username: str = ""
    password: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    max_retries: int = 20  # dicomd's: how often a failed send is retried before giving up
    extra: Mapping[str, Any] = field(default_factory=dict)  # user properties, kept as given

    def public(self) -> dict[str, Any]:
        """``GET /peers?expand``: never the password, only the names of headers."""
        out: dict[str, Any] = {
            "Url": self.url + "/",
            "Username": self.username or None,
            "Password": None,
            "HttpHeaders": sorted(self.headers),
            "Pkcs11": bool(self.extra.get("Pkcs11", False)),
            "Timeout": int(self.timeout),
            "MaxRetries": self.max_retries,
        }
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    def definition(self) -> dict[str, Any]:
        """The object form, as stored when a peer is changed at run time."""
        return {
            "Url": self.url,
            "Username": self.username,
            "Password": self.password,
            "HttpHeaders": dict(self.headers),
            "Timeout": self.timeout,
            "MaxRetries": self.max_retries,
            **self.extra,
        }


def parse_peer(name: str, value: Any, *, timeout: float, max_retries: int) -> Peer:
    """A peer from one of Orthanc's forms; BadRequest names what is wrong."""
    if isinstance(value, list):
        if len(value) not in (1, 3) or not all(isinstance(v, str) for v in value):
            raise BadRequest(f'peer "{name}" must be [url] or [url, username, password] (strings)')
        value = {
            "Url": value[0],
            **({"Username": value[1], "Password": value[2]} if len(value) == 3 else {}),
        }
    if not isinstance(value, dict) or not isinstance(value.get("Url"), str):
        raise BadRequest(f'peer "{name}" must be a list or an object with a "Url"')
    url = value["Url"].rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(f'peer "{name}": "{value["Url"]}" is not an http(s) URL')
    headers = value.get("HttpHeaders", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise BadRequest(f'peer "{name}": "HttpHeaders" must map header names to strings')
    peer_timeout = value.get("Timeout", timeout)
    retries = value.get("MaxRetries", max_retries)
    if not isinstance(peer_timeout, int | float) or peer_timeout <= 0:
        raise BadRequest(f'peer "{name}": "Timeout" must be a positive number of seconds')
    if not isinstance(retries, int) or retries < 0:
        raise BadRequest(f'peer "{name}": "MaxRetries" must be a number (0: never retry)')
    return Peer(
        name=name,
        url=url,
        username=str(value.get("Username") or ""),
        password=str(value.get("Password") or ""),
        headers=dict(headers),
        timeout=float(peer_timeout),
        max_retries=retries,
        extra={k: v for k, v in value.items() if k not in _OBJECT_KEYS},
    )
