"""``/{level}/{id}/attachments``: list, read (streamed, with ``Range``), write, delete,
compress, uncompress and verify the attachments of a resource, as Orthanc serves them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Response, request

from ..domain.attachments import Attachment
from ..domain.model import Level
from ..domain.revisions import not_modified
from ..errors import BadRange, DicomdError, PayloadTooLarge
from ..storage.store import CHUNK_SIZE
from .common import (
    flag,
    if_match,
    if_none_match,
    json_response,
    not_modified_response,
    services,
    set_download_name,
    text_response,
)
from .errors import error_response
from .server import body_chunks, discard_body

blueprint = Blueprint("attachments", __name__)

_LEVELS = "<any(patients, studies, series, instances):collection>"
_LIST = f"/{_LEVELS}/<public_id>/attachments"
_ONE = f"{_LIST}/<name>"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _level(collection: str) -> Level:
    return Level.from_plural(collection)


def _empty_json() -> Response:
    # Orthanc answers writes with "{}" as application/json (no charset).
    return Response("{}", content_type="application/json")


def _answer(
    collection: str, public_id: str, name: str, make: Callable[[Attachment], Response]
) -> Response:
    """Answer a GET about one attachment: with its ETag, or 304 if ``If-None-Match``
    already names the current revision (as Orthanc does for every such GET)."""
    attachment = services().attachments.get(_level(collection), public_id, name)
    try:
        unchanged = not_modified(
            if_none_match(), attachment.revision, attachment.info.uncompressed_md5
        )
    except DicomdError as exc:
        # Orthanc sets the ETag before it reads If-None-Match: a malformed one still gets it.
        response = error_response(exc)
        response.headers["ETag"] = attachment.etag
        return response
    if unchanged:
        return not_modified_response(attachment.etag)
    response = make(attachment)
    response.headers["ETag"] = attachment.etag
    return response


def _stream(chunks: Iterable[bytes], length: int, content_type: str, status: int = 200) -> Response:
    response = Response(chunks, status=status, content_type=content_type, direct_passthrough=True)
    response.headers["Content-Length"] = str(length)
    return response


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (start, end-exclusive) of a ``Range: bytes=a-b`` (also ``a-`` and ``-n``), None
    without the header; several ranges, another unit or nothing to serve is BadRange."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or not (match[1] or match[2]):
        raise BadRange(f"Unsupported Range header: {header}")
    if match[1]:
        start = int(match[1])
        end = int(match[2]) + 1 if match[2] else size
    else:
        start, end = max(size - int(match[2]), 0), size
    end = min(end, size)
    if start >= end:
        raise BadRange(f"Range {header} is not satisfiable for {size} bytes")
    return start, end


# -- the list and one attachment ---------------------------------------------------------
@blueprint.get(_LIST)
def list_attachments(collection: str, public_id: str) -> Response:
    return json_response(
        services().attachments.list_names(_level(collection), public_id, flag("full"))
    )


@blueprint.get(_ONE)
def attachment_operations(collection: str, public_id: str, name: str) -> Response:
    return _answer(collection, public_id, name, lambda a: json_response(a.operations()))


@blueprint.put(_ONE)
def put_attachment(collection: str, public_id: str, name: str) -> Response:
    """The body is streamed to the store; its length must be known (``Content-Length``),
    except for a chunked upload, which is read whole."""
    environ = request.environ
    length = request.content_length
    body: Iterable[bytes]
    try:
        if length is None:
            # Read one byte over the limit at most: enough to refuse an oversized body.
            limit = services().attachments.max_size
            data = request.stream.read(limit + 1) if limit else request.get_data(cache=False)
            body, length = [data], len(data)
        else:
            body = body_chunks(environ, length, CHUNK_SIZE)
        tag = services().attachments.put(
            _level(collection), public_id, name, body, length, if_match()
        )
    except PayloadTooLarge:
        raise  # cheroot closes the connection after a 413, leaving the body unread
    except DicomdError:
        discard_body(environ)
        raise
    response = _empty_json()
    response.headers["ETag"] = tag
    return response


@blueprint.delete(_ONE)
def delete_attachment(collection: str, public_id: str, name: str) -> Response:
    services().attachments.delete(_level(collection), public_id, name, if_match())
    return text_response("")


# -- contents ------------------------------------------------------------------------------
@blueprint.get(f"{_ONE}/data")
def attachment_data(collection: str, public_id: str, name: str) -> Response:
    """The content, with the content type's MIME type; ``Range`` gives 206."""

    def make(attachment: Attachment) -> Response:
        service = services().attachments
        size = attachment.info.uncompressed_size
        mime = service.mime(attachment)
        requested = byte_range(request.headers.get("Range"), size)
        if requested is None:
            response = _stream(service.read(attachment), size, mime)
        else:
            start, end = requested
            response = _stream(service.read(attachment, start, end), end - start, mime, 206)
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        response.headers["Accept-Ranges"] = "bytes"
        set_download_name(response, request.args.get("filename"))
        return response

    return _answer(collection, public_id, name, make)


@blueprint.get(f"{_ONE}/compressed-data")
def attachment_compressed_data(collection: str, public_id: str, name: str) -> Response:
    """The bytes as stored (Orthanc's zlib-with-size format when compressed)."""

    def make(attachment: Attachment) -> Response:
        chunks = services().attachments.read_stored(attachment)
        return _stream(chunks, attachment.info.compressed_size, "application/octet-stream")

    return _answer(collection, public_id, name, make)


@blueprint.get(f"{_ONE}/info")
def attachment_info(collection: str, public_id: str, name: str) -> Response:
    return _answer(collection, public_id, name, lambda a: json_response(a.describe()))


# -- text answers: one view, one URI each --------------------------------------------------
_TEXT: dict[str, Callable[[Attachment], str]] = {
    "size": lambda a: str(a.info.uncompressed_size),
    "compressed-size": lambda a: str(a.info.compressed_size),
    "md5": lambda a: a.md5(stored=False),
    "compressed-md5": lambda a: a.md5(stored=True),
    "is-compressed": lambda a: "1" if a.is_compressed else "0",
}


def attachment_text(collection: str, public_id: str, name: str, field: str) -> Response:
    """``…/size``, ``…/md5``...: a ``text/plain`` value."""
    return _answer(collection, public_id, name, lambda a: text_response(_TEXT[field](a)))


def _route_each(method: str, view: Callable[..., Response], variants: dict[str, Any]) -> None:
    """``…/{name}/{suffix}`` for each variant, all served by ``view`` with that variant's
    arguments; each URI stays an endpoint of its own (and is documented on its own)."""
    for suffix, arguments in variants.items():
        blueprint.add_url_rule(
            f"{_ONE}/{suffix}",
            endpoint=f"attachment_{suffix}",
            view_func=view,
            defaults=arguments,
            methods=[method],
        )


_route_each("GET", attachment_text, {field: {"field": field} for field in _TEXT})


# -- changes of storage, verification ------------------------------------------------------
def change_compression(collection: str, public_id: str, name: str, compressed: bool) -> Response:
    """``POST …/compress`` and ``…/uncompress``."""
    services().attachments.set_compression(_level(collection), public_id, name, compressed)
    return _empty_json()


_route_each(
    "POST",
    change_compression,
    {"compress": {"compressed": True}, "uncompress": {"compressed": False}},
)


@blueprint.post(f"{_ONE}/verify-md5")
def verify_md5(collection: str, public_id: str, name: str) -> Response:
    services().attachments.verify_md5(_level(collection), public_id, name)
    return _empty_json()
