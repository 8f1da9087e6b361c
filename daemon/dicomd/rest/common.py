"""Small helpers shared by the views."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from xml.etree import ElementTree

from flask import Response, current_app, json, request

from ..errors import BadFileFormat, BadRequest

if TYPE_CHECKING:
    from ..services import RestAnswer, Services


def services() -> Services:
    return current_app.extensions["dicomd"]  # type: ignore[no-any-return]


JSON = "application/json; charset=utf-8"


def json_text(value: Any) -> str:
    """JSON the way Orthanc writes it (indented, sorted keys, UTF-8); Flask's encoder, which
    also works outside a request."""
    return json.dumps(value, indent=3, sort_keys=True, ensure_ascii=False) + "\n"


def json_response(value: Any) -> Response:
    """A JSON answer; as XML if the client asks for ``application/xml`` (Orthanc's rule:
    the ``Accept`` header is split at semicolons, and the last of ``application/xml`` and
    ``application/json`` among the pieces decides)."""
    if _wants_xml(request.headers.get("Accept", "")):
        return Response(xml_text(value), content_type="application/xml; charset=utf-8")
    return Response(json_text(value), content_type=JSON)


def _wants_xml(accept: str) -> bool:
    xml = False
    for piece in accept.split(";"):
        if piece == "application/xml":
            xml = True
        elif piece == "application/json":
            xml = False
    return xml


def xml_text(value: Any) -> str:
    """Orthanc's XML form of a JSON answer: a ``root`` element, arrays as ``item``
    children, objects as children named by their keys, scalars as text."""
    root = ElementTree.Element("root")
    _xml_fill(root, value)
    ElementTree.indent(root, space="  ")
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        + ElementTree.tostring(root, encoding="unicode")
        + "\n"
    )


def _xml_fill(node: ElementTree.Element, value: Any) -> None:
    if isinstance(value, list):
        for item in value:
            _xml_fill(ElementTree.SubElement(node, "item"), item)
    elif isinstance(value, dict):
        for key in sorted(value):
            _xml_fill(ElementTree.SubElement(node, key), value[key])
    elif value is None:
        node.text = "null"
    elif isinstance(value, bool):
        node.text = "true" if value else "false"
    else:
        node.text = str(value)


def flag(name: str) -> bool:
    """An Orthanc boolean query argument: present without value, or "true"/"1"."""
    if name not in request.args:
        return False
    return request.args[name].lower() not in ("false", "0")


def int_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f'Argument "{name}" must be an integer') from None


TEXT = "text/plain; charset=utf-8"
_SLASHES = re.compile(r"//+")


def normalise_path(path: str) -> str:
    """Repeated slashes mean one slash and a trailing slash is ignored, as in Orthanc."""
    if "//" in path:
        path = _SLASHES.sub("/", path)
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return path


def flask_answer(answer: RestAnswer) -> Response:
    """A route's framework-free answer as a Flask response."""
    response = Response(answer.body, status=answer.status)
    for key, value in answer.headers.items():
        response.headers[key] = value
    return response


def lower_headers() -> dict[str, str]:
    """The request's headers, by lower-case name."""
    return {key.lower(): value for key, value in request.headers.items()}


def text_response(value: str | bytes = "", etag: str | None = None) -> Response:
    """A ``text/plain`` answer (Orthanc's for metadata values, sizes, MD5s...)."""
    response = Response(value, content_type="text/plain")
    if etag is not None:
        response.headers["ETag"] = etag
    return response


def not_modified_response(etag: str) -> Response:
    response = Response(status=304)
    response.headers["ETag"] = etag
    return response


def if_match() -> str | None:
    return request.headers.get("If-Match")


def if_none_match() -> str | None:
    return request.headers.get("If-None-Match")


def boolean_body(body: bytes) -> bool:
    """Orthanc's boolean request bodies: ``0``, ``1``, ``true`` or ``false``."""
    text = body.decode("utf-8", "replace").strip().lower()
    if text in ("1", "true"):
        return True
    if text in ("0", "false"):
        return False
    raise BadFileFormat("Boolean value expected")


def set_download_name(response: Response, filename: str | None) -> None:
    """``?filename=``: a ``Content-Disposition`` naming the download. Quotes, slashes and
    control characters are dropped; a non-ASCII name is also given in RFC 6266's
    ``filename*`` form, since HTTP headers are Latin-1."""
    if not filename:
        return
    safe = "".join(c for c in filename if c.isprintable() and c not in '"\\/')
    ascii_name = safe.encode("ascii", "replace").decode("ascii")
    value = f'filename="{ascii_name}"'
    if ascii_name != safe:
        value += f"; filename*=UTF-8''{quote(safe, safe='')}"
    response.headers["Content-Disposition"] = value
