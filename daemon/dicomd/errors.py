"""One error tree for the whole daemon.

Each error knows its Orthanc error code, name and HTTP status, so the REST layer turns any of
them into Orthanc's JSON error body in one place, and scripts see Orthanc's error codes.
"""

from __future__ import annotations

from http import HTTPStatus


class DicomdError(Exception):
    """Base of every error dicomd raises on purpose."""

    orthanc_code = -1
    orthanc_message = "Internal error"
    http_status = 500
    # Where Orthanc's handler answers with the status alone (no JSON error body).
    empty_body = False

    def __init__(self, details: str = "", *, empty_body: bool | None = None) -> None:
        super().__init__(details or self.orthanc_message)
        self.details = details
        if empty_body is not None:
            self.empty_body = empty_body

    @property
    def http_error(self) -> str:
        return HTTPStatus(self.http_status).phrase


class InternalError(DicomdError):
    pass


class ConfigError(DicomdError):
    """A configuration file or value is wrong; the message names the key."""

    orthanc_code = 8
    orthanc_message = "Bad request"


class StorageInUse(DicomdError):
    """Another daemon already runs on this storage."""


class StartError(DicomdError):
    """The daemon could not start (its HTTP processes did not come up)."""


class ReadOnlyIndex(DicomdError):
    """The index was opened read-only (``dicomd replay --dry-run``), and something tried to
    write to it, or it cannot be read without writing."""

    orthanc_code = 22
    orthanc_message = "Cannot modify a read-only data structure"


class CannotExecuteLua(DicomdError):
    """A Lua script failed; the message names the script and the line."""

    orthanc_code = 2031
    orthanc_message = "Cannot execute a Lua command"


class NotImplementedFeature(DicomdError):
    orthanc_code = 2
    orthanc_message = "Not implemented yet"
    http_status = 501


class ParameterOutOfRange(DicomdError):
    orthanc_code = 3
    orthanc_message = "Parameter out of range"
    http_status = 400


class BadParameterType(DicomdError):
    orthanc_code = 5
    orthanc_message = "Bad type for a parameter"
    http_status = 400


class InexistentItem(DicomdError):
    orthanc_code = 7
    orthanc_message = "Accessing an inexistent item"
    http_status = 404


class NetworkProtocol(DicomdError):
    """A peer could not be reached, or answered an error."""

    orthanc_code = 9
    orthanc_message = "Error in the network protocol"
    http_status = 500


class BadRequest(DicomdError):
    orthanc_code = 8
    orthanc_message = "Bad request"
    http_status = 400


class InexistentFile(DicomdError):
    orthanc_code = 13
    orthanc_message = "Inexistent file"
    http_status = 500


class CannotWriteFile(DicomdError):
    orthanc_code = 14
    orthanc_message = "Cannot write to file"
    http_status = 500


class BadFileFormat(DicomdError):
    orthanc_code = 15
    orthanc_message = "Bad file format"
    http_status = 400


class UnknownResource(DicomdError):
    """An unknown ID: Orthanc's lookups answer nothing, which is an empty 404."""

    orthanc_code = 17
    orthanc_message = "Unknown resource"
    http_status = 404
    empty_body = True


class UnknownDicomTag(DicomdError):
    """A tag given by a name that no dictionary knows."""

    orthanc_code = 27
    orthanc_message = "Unknown DICOM tag"
    http_status = 500  # Orthanc gives this error no HTTP status of its own


class FullStorage(DicomdError):
    orthanc_code = 19
    orthanc_message = "The file storage is full"
    http_status = 507


class CorruptedFile(DicomdError):
    orthanc_code = 20
    orthanc_message = "Corrupted file (e.g. inconsistent MD5 hash)"
    http_status = 500


class Unauthorized(DicomdError):
    orthanc_code = 29
    orthanc_message = "Bad credentials were provided to an HTTP request"
    http_status = 401


class BadRange(DicomdError):
    orthanc_code = 41
    orthanc_message = "Incorrect range request"
    http_status = 416


class Revision(DicomdError):
    orthanc_code = 43
    orthanc_message = (
        "A bad revision number was provided, which might indicate conflict between multiple writers"
    )
    http_status = 409


class ForbiddenAccess(DicomdError):
    """Writing core metadata or system attachments: Orthanc answers a bare 403."""

    orthanc_code = 44
    orthanc_message = "Access to a resource is forbidden"
    http_status = 403
    empty_body = True


class DuplicateResource(DicomdError):
    orthanc_code = 45
    orthanc_message = "Duplicate resource"
    http_status = 409


class PayloadTooLarge(DicomdError):
    """A request body over a configured limit (``MaximumAttachmentSize``). Orthanc has no
    such limit, hence no error code of its own: this is its "Bad request" with HTTP 413."""

    orthanc_code = 8
    orthanc_message = "Bad request"
    http_status = 413
