"""``import orthanc`` for Python scripts written for Orthanc's Python plugin.

Each loaded script gets its own module object (built by :func:`make_orthanc_module`), so
registrations belong to the script that made them and are undone when it reloads. The
constants, :class:`OrthancException` and the classes are shared by every script. Calls that
dicomd cannot honour raise ``OrthancException(ErrorCode.NOT_IMPLEMENTED, ...)`` naming the
call; names the plugin does not have raise AttributeError.
"""

from __future__ import annotations

import hashlib
import json
import types
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..domain.model import ChangeType as CoreChange
from ..domain.model import Level
from ..errors import DicomdError
from .lookups import find_by_uid
from .routes import ScriptRequest, ScriptResponse

if TYPE_CHECKING:
    from ..events.handlers import Event
    from .context import LoadedScript


class ChangeType:
    """The plugin's numbering (not the REST one)."""

    COMPLETED_SERIES = 0
    DELETED = 1
    NEW_CHILD_INSTANCE = 2
    NEW_INSTANCE = 3
    NEW_PATIENT = 4
    NEW_SERIES = 5
    NEW_STUDY = 6
    STABLE_PATIENT = 7
    STABLE_SERIES = 8
    STABLE_STUDY = 9
    ORTHANC_STARTED = 10
    ORTHANC_STOPPED = 11
    UPDATED_ATTACHMENT = 12
    UPDATED_METADATA = 13
    UPDATED_PEERS = 14
    UPDATED_MODALITIES = 15
    JOB_SUBMITTED = 16
    JOB_SUCCESS = 17
    JOB_FAILURE = 18


class ResourceType:
    PATIENT = 0
    STUDY = 1
    SERIES = 2
    INSTANCE = 3
    NONE = 4


class InstanceOrigin:
    UNKNOWN = 1
    DICOM_PROTOCOL = 2
    REST_API = 3
    PLUGIN = 4
    LUA = 5
    WEB_DAV = 6


class ReceivedInstanceAction:
    KEEP_AS_IS = 1
    MODIFY = 2
    DISCARD = 3


class HttpMethod:
    GET = 1
    POST = 2
    PUT = 3
    DELETE = 4


class StableStatus:
    STABLE = 0
    UNSTABLE = 1


class ErrorCode:
    """Orthanc's error codes (``OrthancPluginErrorCode``)."""

    INTERNAL_ERROR = -1
    SUCCESS = 0
    PLUGIN = 1
    NOT_IMPLEMENTED = 2
    PARAMETER_OUT_OF_RANGE = 3
    NOT_ENOUGH_MEMORY = 4
    BAD_PARAMETER_TYPE = 5
    BAD_SEQUENCE_OF_CALLS = 6
    INEXISTENT_ITEM = 7
    BAD_REQUEST = 8
    NETWORK_PROTOCOL = 9
    SYSTEM_COMMAND = 10
    DATABASE = 11
    URI_SYNTAX = 12
    INEXISTENT_FILE = 13
    CANNOT_WRITE_FILE = 14
    BAD_FILE_FORMAT = 15
    TIMEOUT = 16
    UNKNOWN_RESOURCE = 17
    INCOMPATIBLE_DATABASE_VERSION = 18
    FULL_STORAGE = 19
    CORRUPTED_FILE = 20
    INEXISTENT_TAG = 21
    READ_ONLY = 22
    INCOMPATIBLE_IMAGE_FORMAT = 23
    INCOMPATIBLE_IMAGE_SIZE = 24
    SHARED_LIBRARY = 25
    UNKNOWN_PLUGIN_SERVICE = 26
    UNKNOWN_DICOM_TAG = 27
    BAD_JSON = 28
    UNAUTHORIZED = 29
    BAD_FONT = 30
    DATABASE_PLUGIN = 31
    STORAGE_AREA_PLUGIN = 32
    EMPTY_REQUEST = 33
    NOT_ACCEPTABLE = 34
    NULL_POINTER = 35
    DATABASE_UNAVAILABLE = 36
    CANCELED_JOB = 37
    BAD_GEOMETRY = 38
    SSL_INITIALIZATION = 39
    DISCONTINUED_ABI = 40
    BAD_RANGE = 41
    DATABASE_CANNOT_SERIALIZE = 42
    REVISION = 43
    MAIN_DICOM_TAGS_MULTIPLY_DEFINED = 44
    FORBIDDEN_ACCESS = 45
    DUPLICATE_RESOURCE = 46
    UNSUPPORTED_MEDIA_TYPE = 3000


class OrthancException(Exception):
    """``args[0]``: the :class:`ErrorCode`; ``args[1]``: the description."""


def _not_supported(name: str, why: str) -> OrthancException:
    return OrthancException(
        ErrorCode.NOT_IMPLEMENTED, f"orthanc.{name} is not supported by dicomd: {why}"
    )


def _translated(error: DicomdError) -> OrthancException:
    return OrthancException(error.orthanc_code, str(error))


_PLUGIN_CHANGES = {
    CoreChange.CompletedSeries: ChangeType.COMPLETED_SERIES,
    CoreChange.Deleted: ChangeType.DELETED,
    CoreChange.NewInstance: ChangeType.NEW_INSTANCE,
    CoreChange.NewPatient: ChangeType.NEW_PATIENT,
    CoreChange.NewSeries: ChangeType.NEW_SERIES,
    CoreChange.NewStudy: ChangeType.NEW_STUDY,
    CoreChange.StablePatient: ChangeType.STABLE_PATIENT,
    CoreChange.StableSeries: ChangeType.STABLE_SERIES,
    CoreChange.StableStudy: ChangeType.STABLE_STUDY,
    CoreChange.UpdatedAttachment: ChangeType.UPDATED_ATTACHMENT,
    CoreChange.UpdatedMetadata: ChangeType.UPDATED_METADATA,
    CoreChange.JobSubmitted: ChangeType.JOB_SUBMITTED,
    CoreChange.JobSuccess: ChangeType.JOB_SUCCESS,
    CoreChange.JobFailure: ChangeType.JOB_FAILURE,
}
_ORIGINS = {
    "Unknown": InstanceOrigin.UNKNOWN,
    "DicomProtocol": InstanceOrigin.DICOM_PROTOCOL,
    "RestApi": InstanceOrigin.REST_API,
    "Plugins": InstanceOrigin.PLUGIN,
    "Lua": InstanceOrigin.LUA,
    "WebDav": InstanceOrigin.WEB_DAV,
}
_HTTP_METHODS = {"GET": 1, "POST": 2, "PUT": 3, "DELETE": 4}
# The plugin's translation of a REST status into an error (ThrowOnHttpError).
_HTTP_ERRORS = {401: 29, 403: 29, 404: 17, 415: 3000}

_UNSUPPORTED = {
    "RegisterReceivedInstanceCallback": "instance filters do not get the received file yet; "
    "use dicomd.script.incoming_instance_filter (tags, origin, info)",
    "RegisterIncomingCStoreInstanceFilter": "dicomd has no DICOM network yet",
    "RegisterFindCallback": "dicomd has no DICOM network yet",
    "RegisterMoveCallback": "dicomd has no DICOM network yet",
    "RegisterWorklistCallback": "dicomd has no DICOM network yet",
    "RegisterStorageCommitmentScpCallback": "dicomd has no DICOM network yet",
    "RegisterStorageArea": "the storage area is dicomd's own",
    "RegisterStorageArea3": "the storage area is dicomd's own",
    "CreateDicom": "it needs the C++ SDK's DICOM writer",
    "HttpGet": "use urllib or requests",
    "HttpPost": "use urllib or requests",
    "HttpPut": "use urllib or requests",
    "HttpDelete": "use urllib or requests",
    "GetPeers": "use RestApiGet('/peers?expand') instead",
    "LookupDictionary": "there is no DICOM dictionary service",
    "ExtendOrthancExplorer": "dicomd has no Orthanc Explorer",
    "SetMetricsValue": "dicomd has no metrics",
    "StoreKeyValue": "dicomd has no key-value stores",
    "GetKeyValue": "dicomd has no key-value stores",
    "DeleteKeyValue": "dicomd has no key-value stores",
}


class DicomInstance:
    """A stored instance as the stored-instance callback gets it (no image decoding)."""

    def __init__(self, script: LoadedScript, event: Event) -> None:
        self._script = script
        self._event = event
        self._data: bytes | None = None

    def _metadata(self) -> dict[str, str]:
        return self._event.metadata()

    def GetInstanceSimplifiedJson(self) -> str:
        return json.dumps(self._event.tags())

    def GetInstanceJson(self) -> str:
        tags = self._script.services.resources.instance_tags(self._event.resource_id, "full")
        return json.dumps(tags)

    def GetInstanceAdvancedJson(self, *args: Any) -> str:
        raise _not_supported("DicomInstance.GetInstanceAdvancedJson", "use GetInstanceJson")

    def GetInstanceData(self) -> bytes:
        if self._data is None:
            self._data = self._script.services.resources.instance_file(self._event.resource_id)
        return self._data

    SerializeDicomInstance = GetInstanceData

    def GetInstanceSize(self) -> int:
        return len(self.GetInstanceData())

    def HasInstanceMetadata(self, name: str) -> int:
        return int(name in self._metadata())

    def GetInstanceMetadata(self, name: str) -> str:
        found = self._metadata().get(name)
        if found is None:
            raise OrthancException(ErrorCode.INEXISTENT_ITEM, f"No metadata {name}")
        return found

    def GetInstanceOrigin(self) -> int:
        return _ORIGINS.get(self._metadata().get("Origin", ""), InstanceOrigin.UNKNOWN)

    def GetInstanceRemoteAet(self) -> str:
        return self._metadata().get("RemoteAET", "")

    def GetInstanceCalledAet(self) -> str:
        return self._metadata().get("CalledAET", "")

    def GetInstanceRemoteIp(self) -> str:
        return self._metadata().get("RemoteIP", "")

    def GetInstanceTransferSyntaxUid(self) -> str:
        return self._metadata().get("TransferSyntax", "")

    def HasInstancePixelData(self) -> bool:
        return "PixelDataOffset" in self._metadata()

    def GetInstanceFramesCount(self) -> int:
        if not self.HasInstancePixelData():
            return 0
        try:
            return int(self._event.tags().get("NumberOfFrames") or 1)
        except ValueError:
            return 1

    def GetInstanceRawFrame(self, index: int) -> bytes:
        raise _not_supported("DicomInstance.GetInstanceRawFrame", "no image decoding")

    def GetInstanceDecodedFrame(self, index: int) -> Any:
        raise _not_supported("DicomInstance.GetInstanceDecodedFrame", "no image decoding")


class RestOutput:
    """What a REST callback answers, collected and then turned into the HTTP response."""

    def __init__(self) -> None:
        self.response: ScriptResponse | None = None
        self.headers: dict[str, str] = {}

    def _answer(self, status: int, body: bytes | str = b"", mime: str = "text/plain") -> None:
        if self.response is not None:
            raise OrthancException(ErrorCode.BAD_SEQUENCE_OF_CALLS, "Already answered")
        data = body.encode() if isinstance(body, str) else bytes(body)
        self.response = ScriptResponse(status, data, mime, self.headers)

    def AnswerBuffer(self, data: bytes | str, mime: str) -> None:
        self._answer(200, data, mime)

    def SendHttpStatusCode(self, code: int) -> None:
        self._answer(code)

    def SendHttpStatus(self, code: int, body: bytes | str) -> None:
        self._answer(code, body)

    def SendMethodNotAllowed(self, allowed: str) -> None:
        self.headers["Allow"] = allowed
        self._answer(405)

    def SendUnauthorized(self, realm: str) -> None:
        self.headers["WWW-Authenticate"] = f'Basic realm="{realm}"'
        self._answer(401)

    def Redirect(self, uri: str) -> None:
        self.headers["Location"] = uri
        self._answer(301)

    def SetHttpHeader(self, key: str, value: str) -> None:
        self.headers[key] = value

    def SetCookie(self, key: str, value: str) -> None:
        self.headers["Set-Cookie"] = f"{key}={value}"

    def SetHttpErrorDetails(self, details: str, log: bool) -> None:
        self.headers["X-Error-Details"] = details

    def __getattr__(self, name: str) -> Any:
        if name[:1].isupper():
            raise _not_supported(f"RestOutput.{name}", "not implemented for REST callbacks")
        raise AttributeError(name)


class _OrthancModule(types.ModuleType):
    """A module whose unknown names fail clearly."""

    def __getattr__(self, name: str) -> Any:
        why = _UNSUPPORTED.get(name)
        if why is not None:

            def unsupported(*args: Any, **kwargs: Any) -> Any:
                raise _not_supported(name, why)

            return unsupported
        raise AttributeError(f"dicomd's orthanc module has no {name}")


def make_orthanc_module(script: LoadedScript) -> types.ModuleType:
    """The ``orthanc`` module for ``script``."""
    module = _OrthancModule("orthanc", "dicomd's compatibility with Orthanc's Python plugin")
    shared = {
        "ChangeType": ChangeType,
        "ResourceType": ResourceType,
        "InstanceOrigin": InstanceOrigin,
        "ReceivedInstanceAction": ReceivedInstanceAction,
        "HttpMethod": HttpMethod,
        "StableStatus": StableStatus,
        "ErrorCode": ErrorCode,
        "OrthancException": OrthancException,
        "DicomInstance": DicomInstance,
        "RestOutput": RestOutput,
    }
    vars(module).update(shared)
    vars(module).update(_Functions(script).exported())
    return module


class _Functions:  # method names are the plugin's
    """The module's functions, bound to one script."""

    def __init__(self, script: LoadedScript) -> None:
        self.script = script

    def exported(self) -> dict[str, Callable[..., Any]]:
        return {
            name: getattr(self, name)
            for name in dir(self)
            if name[:1].isupper() and callable(getattr(self, name))
        }

    def _once(self, what: str) -> None:
        singletons = self.script.registered.orthanc_singletons
        if what in singletons:
            raise RuntimeError(f"Can only register one {what}")
        singletons.add(what)

    # -- registrations ---------------------------------------------------------------------
    def RegisterOnChangeCallback(self, callback: Callable[[int, int, str], None]) -> None:
        self._once("OnChangeCallback")

        def on_change(event: Event) -> None:
            # A job event: NONE, and the job's ID as the resource's, as Orthanc passes it.
            level = ResourceType.NONE if event.level is None else int(event.level)
            callback(_PLUGIN_CHANGES[event.type], level, event.resource_id)

        on_change.__name__ = getattr(callback, "__name__", "on_change")
        registered = self.script.registered
        registered.events.append((frozenset(_PLUGIN_CHANGES), on_change))
        none = ResourceType.NONE
        registered.started.append(lambda: callback(ChangeType.ORTHANC_STARTED, none, ""))
        registered.stopping.append(lambda: callback(ChangeType.ORTHANC_STOPPED, none, ""))

    def RegisterOnStoredInstanceCallback(
        self, callback: Callable[[DicomInstance, str], None]
    ) -> None:
        self._once("OnStoredInstanceCallback")
        script = self.script

        def on_stored(event: Event) -> None:
            callback(DicomInstance(script, event), event.resource_id)

        on_stored.__name__ = getattr(callback, "__name__", "on_stored")
        script.registered.events.append((frozenset({CoreChange.NewInstance}), on_stored))

    def RegisterIncomingHttpRequestFilter(self, callback: Callable[..., bool]) -> None:
        self._once("IncomingHttpRequestFilter")

        def http_filter(
            method: str, uri: str, ip: str, username: str, headers: dict[str, str]
        ) -> bool:
            extra: dict[str, Any] = {"get": {}} if method == "GET" else {}
            allowed = callback(uri, method=_HTTP_METHODS[method], ip=ip, headers=headers, **extra)
            if not isinstance(allowed, bool):
                raise TypeError(f"the HTTP filter returned {allowed!r}, not a bool")
            return allowed

        self.script.registered.http_filters.append(http_filter)

    def RegisterRestCallback(self, regex: str, callback: Callable[..., None]) -> None:
        def serve(request: ScriptRequest) -> ScriptResponse:
            output = RestOutput()
            kwargs: dict[str, Any] = {
                "method": request.method,
                "groups": request.groups,
                "headers": request.headers,
            }
            if request.method == "GET":
                kwargs["get"] = request.args
            if request.method in ("POST", "PUT"):
                kwargs["body"] = request.body
            callback(output, request.path, **kwargs)
            if output.response is None:
                raise OrthancException(ErrorCode.PLUGIN, f"{regex}: the callback sent no answer")
            return output.response

        self.script.registered.routes.append((regex, frozenset(), serve))

    # -- REST ------------------------------------------------------------------------------
    def _rest(self, method: str, uri: str, body: bytes | str, builtin: bool) -> bytes:
        data = body.encode() if isinstance(body, str) else bytes(body)
        answer = self.script.api.rest(method, uri, data, builtin=builtin)
        if not answer.ok:
            code = _HTTP_ERRORS.get(answer.status, ErrorCode.BAD_REQUEST)
            raise OrthancException(code, f"{method} {uri}: HTTP {answer.status}")
        return answer.body

    def RestApiGet(self, uri: str) -> bytes:
        return self._rest("GET", uri, b"", True)

    def RestApiPost(self, uri: str, body: bytes | str) -> bytes:
        return self._rest("POST", uri, body, True)

    def RestApiPut(self, uri: str, body: bytes | str) -> bytes:
        return self._rest("PUT", uri, body, True)

    def RestApiDelete(self, uri: str) -> None:
        self._rest("DELETE", uri, b"", True)

    def RestApiGetAfterPlugins(self, uri: str) -> bytes:
        return self._rest("GET", uri, b"", False)

    def RestApiPostAfterPlugins(self, uri: str, body: bytes | str) -> bytes:
        return self._rest("POST", uri, body, False)

    def RestApiPutAfterPlugins(self, uri: str, body: bytes | str) -> bytes:
        return self._rest("PUT", uri, body, False)

    def RestApiDeleteAfterPlugins(self, uri: str) -> None:
        self._rest("DELETE", uri, b"", False)

    # -- the rest --------------------------------------------------------------------------
    def LogInfo(self, message: str) -> None:
        self.script.log.info("%s", message)

    def LogWarning(self, message: str) -> None:
        self.script.log.warning("%s", message)

    def LogError(self, message: str) -> None:
        self.script.log.error("%s", message)

    def GetConfiguration(self) -> str:
        return json.dumps(self.script.api.configuration())

    def GenerateUuid(self) -> str:
        return str(uuid.uuid4())

    def ComputeMd5(self, data: bytes | str) -> str:
        return hashlib.md5(data.encode() if isinstance(data, str) else data).hexdigest()

    def ComputeSha1(self, data: bytes | str) -> str:
        return hashlib.sha1(data.encode() if isinstance(data, str) else data).hexdigest()

    def GetDicomForInstance(self, instance_id: str) -> bytes:
        try:
            return self.script.services.resources.instance_file(instance_id)
        except DicomdError as error:
            raise _translated(error) from error

    def SetStableStatus(self, resource_id: str, status: int) -> tuple[int, bool]:
        try:
            changed = self.script.api.set_stable_status(resource_id, status == 0)
        except DicomdError as error:
            raise _translated(error) from error
        return ErrorCode.SUCCESS, changed

    def _lookup(self, level: Level, uid: str) -> str:
        found = find_by_uid(self.script.services, level, uid)
        if found is None:
            raise OrthancException(ErrorCode.UNKNOWN_RESOURCE, f"No {level.title} {uid}")
        return found

    def LookupPatient(self, patient_id: str) -> str:
        return self._lookup(Level.PATIENT, patient_id)

    def LookupStudy(self, study_uid: str) -> str:
        return self._lookup(Level.STUDY, study_uid)

    def LookupSeries(self, series_uid: str) -> str:
        return self._lookup(Level.SERIES, series_uid)

    def LookupInstance(self, sop_uid: str) -> str:
        return self._lookup(Level.INSTANCE, sop_uid)
