"""Names and numbers of metadata and attachment types, as Orthanc resolves them in URIs.

Core types have fixed names; user types (1024..65535) get theirs from ``UserMetadata`` and
``UserContentType``. A URI may name a type by its name (exact, case-sensitive) or by its
number; a user type without a name is shown as its number.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..config import DEFAULT_MIME, USER_RANGE
from ..errors import ForbiddenAccess, InexistentItem
from .model import ContentType, Metadata

_CORE_CONTENT_MIME = {
    ContentType.Dicom: "application/dicom",
    ContentType.DicomAsJson: "application/json",
    ContentType.DicomUntilPixelData: "application/dicom",
}


class _Names:
    def __init__(self, core: Mapping[str, int], user: Mapping[str, int], what: str) -> None:
        self._numbers = {**core, **user}
        self._names = {number: name for name, number in self._numbers.items()}
        self._what = what

    def number(self, text: str) -> int:
        """The number a URI component stands for; an unknown name is InexistentItem."""
        if text.isdigit():
            return int(text)
        try:
            return self._numbers[text]
        except KeyError:
            raise InexistentItem(f"Unknown {self._what}: {text}") from None

    def name(self, number: int) -> str:
        return self._names.get(number, str(number))

    def writable(self, text: str) -> int:
        """The number of a type users may write; core types and numbers outside the user
        range are ForbiddenAccess (403), as in Orthanc."""
        number = self.number(text)
        if number not in USER_RANGE:
            raise ForbiddenAccess(f"The {self._what} {text} is reserved; it cannot be changed")
        return number


class MetadataNames(_Names):
    """Metadata names: Orthanc's core ones plus ``UserMetadata``."""

    def __init__(self, user: Mapping[str, int]) -> None:
        super().__init__({m.name: int(m) for m in Metadata}, user, "metadata")


class ContentTypeNames(_Names):
    """Attachment names: ``dicom`` and friends plus ``UserContentType``, with MIME types."""

    def __init__(self, user: Mapping[str, tuple[int, str]]) -> None:
        core = {t.public_name: int(t) for t in ContentType}
        super().__init__(core, {name: n for name, (n, _) in user.items()}, "attachment")
        self._mime: dict[int, str] = {int(n): mime for n, mime in _CORE_CONTENT_MIME.items()}
        self._mime.update({n: mime for n, mime in user.values()})

    def mime(self, number: int) -> str:
        return self._mime.get(number, DEFAULT_MIME)
