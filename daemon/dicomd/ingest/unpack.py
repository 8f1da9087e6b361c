"""Containers that carry several DICOM files: ZIP archives (uploads and hot folders)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

from ..errors import BadFileFormat

ZIP_MAGIC = b"PK\x03\x04"


def is_zip(data: bytes) -> bool:
    return data[:4] == ZIP_MAGIC


def iter_zip_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, bytes)`` for each file of a ZIP archive, skipping folders and DICOMDIR.

    Members are read one at a time, so memory holds one member, not the whole expansion.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise BadFileFormat(f"Cannot read the ZIP archive: {exc}") from exc
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            base = info.filename.rsplit("/", 1)[-1]
            if base.upper() == "DICOMDIR":
                continue
            try:
                yield info.filename, archive.read(info)
            except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as exc:
                raise BadFileFormat(
                    f"Cannot read {info.filename} in the ZIP archive: {exc}"
                ) from exc
