"""A ZIP archive produced while it is sent: :mod:`zipfile` writes into a sink that keeps
nothing but the bytes not yet handed on, so an archive of any size holds one chunk of one
member in memory and never touches the disk.

The output cannot be seeked back into, so each member's sizes and CRC follow its data (a
data descriptor). ZIP64 is used for a member whose size calls for it and, by :mod:`zipfile`
itself, for the central directory of an archive past 4 GB or 65,535 members.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterable, Iterator

# Below this, a member is written with 32-bit sizes (zipfile's own margin: deflate can grow
# incompressible data a little).
_ZIP64_MARGIN = 1.05


class _Sink:
    """The file zipfile writes to: collects what it writes until it is taken."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.pending = 0
        self.written = 0

    def write(self, data: bytes, /) -> int:
        if data:
            self._parts.append(bytes(data))
            self.pending += len(data)
            self.written += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        self.pending = 0
        return data


class ZipStream:
    """Members are added one at a time; every method yields (or returns) the archive's bytes
    as they are produced, in order. ``level`` is the deflate level (0 stores)."""

    def __init__(self, level: int = 6) -> None:
        self._sink = _Sink()
        self._level = level
        method = zipfile.ZIP_DEFLATED if level > 0 else zipfile.ZIP_STORED
        self._method = method
        self._zip = zipfile.ZipFile(self._sink, "w", method, allowZip64=True)
        self._time = time.localtime()[:6]

    @property
    def size(self) -> int:
        """The bytes of the archive produced so far."""
        return self._sink.written

    def member(self, name: str, size: int, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Add a member of ``size`` bytes arriving as ``chunks``; yields the archive's bytes
        as they come. Members carry Orthanc's attributes (made on "MS-DOS", no mode)."""
        info = zipfile.ZipInfo(name, date_time=self._time)  # type: ignore[arg-type]
        info.create_system = 0
        info.compress_type = self._method
        _set_level(info, self._level)
        info.file_size = size
        zip64 = size * _ZIP64_MARGIN > zipfile.ZIP64_LIMIT
        with self._zip.open(info, "w", force_zip64=zip64) as out:
            for chunk in chunks:
                out.write(chunk)
                if self._sink.pending:
                    yield self._sink.take()
        if self._sink.pending:
            yield self._sink.take()

    def add(self, name: str, data: bytes) -> bytes:
        """Add a small member held in memory (a DICOMDIR); returns the bytes produced."""
        return b"".join(self.member(name, len(data), [data]))

    def finish(self) -> bytes:
        """Write the central directory; returns the archive's last bytes."""
        self._zip.close()
        return self._sink.take()


def _set_level(info: zipfile.ZipInfo, level: int) -> None:
    # The level is a ZipInfo attribute that zipfile fills only for members named by a string;
    # Python 3.13 renamed it.
    if hasattr(info, "compress_level"):
        info.compress_level = level
    else:
        info._compresslevel = level  # type: ignore[attr-defined]
