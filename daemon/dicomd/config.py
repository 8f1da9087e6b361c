"""The configuration model: Orthanc's key names and defaults, plus the keys dicomd adds.

Every default lives here and only here. A configuration file is JSON with ``//`` and ``/* */``
comments, as Orthanc's own files have them. Keys dicomd does not implement are logged and
ignored, so an existing Orthanc configuration starts; a key with a wrong type or value is a
:class:`ConfigError` naming the key.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .domain.dicomjson import ENCODINGS
from .domain.dictionary import DicomDictionary, Entry, default_dictionary, parse_dictionary_option
from .errors import BadRequest, ConfigError
from .peers.definition import Peer, parse_peer

log = logging.getLogger(__name__)

# Keys of Orthanc's configuration that dicomd knows it does not implement (yet). They are
# accepted silently apart from one informational line, unlike misspelt keys, which warn.
KNOWN_ORTHANC_KEYS = frozenset(
    [
        "DicomAet",
        "DicomPort",
        "DicomServerEnabled",
        "DicomCheckCalledAet",
        "DicomModalities",
        "DicomModalitiesInDatabase",
        "DicomAlwaysAllowEcho",
        "DicomAlwaysAllowStore",
        "DicomAlwaysAllowFind",
        "DicomAlwaysAllowMove",
        "DicomAlwaysAllowGet",
        "DicomCheckModalityHost",
        "DicomScuTimeout",
        "DicomScpTimeout",
        "DicomAssociationCloseDelay",
        "DicomThreadsCount",
        "DicomTlsEnabled",
        "DeflatedTransferSyntaxAccepted",
        "HttpServerEnabled",
        "HttpCompressionEnabled",
        "HttpProxy",
        "HttpVerbose",
        "HttpsVerifyPeers",
        "HttpsCACertificates",
        "HttpRequestTimeout",
        "KeepAlive",
        "KeepAliveTimeout",
        "TcpNoDelay",
        "SslEnabled",
        "SslCertificate",
        "SslMinimumProtocolVersion",
        "SslVerifyPeers",
        "SslTrustedClientCertificates",
        "HttpHeaders",
        "StrictAetComparison",
        "StoreDicom",
        "DicomAssociationCloseDelay",
        "QueryRetrieveSize",
        "CaseSensitivePN",
        "SynchronousCMove",
        "SaveJobs",
        "OrthancPeersInDatabase",
        "OrthancExplorerEnabled",
        "WebDavEnabled",
        "WebDavDeleteAllowed",
        "WebDavUploadAllowed",
        "MediaArchiveSize",
        "LimitFindResults",
        "LimitFindInstances",
        "MaximumStorageCacheSize",
        "RestApiWriteToFileSystemEnabled",
        "Plugins",
        "DicomWeb",
        "Worklists",
        "PythonVerbose",
        "IngestTranscoding",
        "IngestTranscodingOfUncompressed",
        "IngestTranscodingOfCompressed",
        "BuiltinDecoderTranscoderOrder",
        "DicomLossyTranscodingQuality",
        "SyncStorageArea",
        "MallocArenaMax",
        "DeidentifyLogs",
        "DeidentifyLogsDicomVersion",
        "ReadOnly",
        "StorageAccessOnFind",
        "ExtraMainDicomTags",
        "Warnings",
        "ZipLoaderThreads",
        "DatabaseServerIdentifier",
        "ExternalDictionaries",
        "Locale",
        "TranscodeDicomProtocol",
        "DicomEchoChecksFind",
        "DicomDefaultRetrieveMethod",
        "Gdcm",
        "PostgreSQL",
        "MySQL",
        "Transfers",
        "Authorization",
    ]
)


@dataclass(frozen=True)
class HotFolder:
    """One watched inbox folder (an entry of ``HotFolders``). Paths are absolute."""

    path: Path
    done_path: Path
    error_path: Path
    recursive: bool = True
    after_import: str = "Delete"  # "Delete" or "Move" (to done_path)
    polling: bool = False  # poll instead of inotify, for network shares
    settle_seconds: float = 1.0


@dataclass(frozen=True)
class Config:
    """A validated configuration. Paths are absolute."""

    name: str = "dicomd"
    http_port: int = 8042
    remote_access_allowed: bool = False
    authentication_enabled: bool = False
    registered_users: Mapping[str, str] = field(default_factory=dict)
    storage_directory: Path = Path("dicomd-data")
    index_directory: Path = Path("dicomd-data")
    storage_compression: bool = False
    overwrite_instances: bool = False
    store_md5_for_attachments: bool = True
    http_describe_errors: bool = True
    http_threads_count: int = 50
    stable_age: int = 60
    http_processes: int = 0  # 0: one per CPU core, at most 4
    user_metadata: Mapping[str, int] = field(default_factory=dict)
    user_content_types: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    check_revisions: bool = False
    maximum_attachment_size: int = 1024  # MB; 0: unlimited
    http_maximum_body_size: int = 16  # MB, bodies read whole (metadata...); 0: unlimited
    maximum_storage_size: int = 0  # MB; 0: unlimited
    maximum_patient_count: int = 0  # 0: unlimited
    maximum_storage_mode: str = "Recycle"  # or "Reject"
    hot_folders: tuple[HotFolder, ...] = ()
    lua_scripts: tuple[Path, ...] = ()
    lua_heartbeat_period: int = 0  # seconds; 0: no OnHeartBeat
    execute_lua_enabled: bool = False
    python_scripts: tuple[Path, ...] = ()  # PythonScripts, PythonScript and Python.Path
    orthanc_peers: Mapping[str, Peer] = field(default_factory=dict)
    http_timeout: int = 60  # seconds, for requests to peers
    peer_max_retries: int = 20
    concurrent_jobs: int = 2
    jobs_history_size: int = 10
    default_encoding: str = "Latin1"  # decodes files without SpecificCharacterSet
    accepted_transfer_syntaxes: tuple[str, ...] = ("1.2.840.10008.1.*",)  # patterns
    unknown_sop_class_accepted: bool = False
    log_exported_resources: bool = False
    metrics_enabled: bool = True
    load_private_dictionary: bool = True  # DCMTK's dictionary of private tags
    dictionary: Mapping[int | tuple[int, str], Entry] = field(default_factory=dict)
    # The raw configuration as read (for GetOrthancConfiguration() and friends) and the
    # folder its relative paths resolve against, so another process can rebuild it.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    base_dir: Path = field(default=Path("."), compare=False, repr=False)

    @cached_property
    def dicom_dictionary(self) -> DicomDictionary:
        """The dictionary that names and decodes tags: DCMTK's private tags
        (``LoadPrivateDictionary``) and the ``Dictionary`` option over pydicom's."""
        return default_dictionary(self.load_private_dictionary, self.dictionary)

    @property
    def process_count(self) -> int:
        """How many processes serve the REST API."""
        if self.http_processes:
            return self.http_processes
        return max(1, min(os.cpu_count() or 1, 4))

    @property
    def bind_address(self) -> str:
        """Loopback only unless remote access is explicitly allowed."""
        return "0.0.0.0" if self.remote_access_allowed else "127.0.0.1"


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f'"{key}" must be true or false, not {json.dumps(value)}')


def _port(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
        return value
    raise ConfigError(f'"{key}" must be a TCP port number (0-65535), not {json.dumps(value)}')


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ConfigError(f'"{key}" must be a positive integer, not {json.dumps(value)}')


def _stable_age(key: str, value: Any) -> int:
    # As in Orthanc, a value below 1 means the default.
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 1 else 60
    raise ConfigError(f'"{key}" must be a number of seconds, not {json.dumps(value)}')


def _process_count(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 64:
        return value
    raise ConfigError(
        f'"{key}" must be a number of processes (0 for one per core), not {json.dumps(value)}'
    )


def _string(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ConfigError(f'"{key}" must be a string, not {json.dumps(value)}')


def _users(key: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return dict(value)
    raise ConfigError(f'"{key}" must be an object mapping user names to passwords')


USER_RANGE = range(1024, 65536)
DEFAULT_MIME = "application/octet-stream"


def _user_number(key: str, name: Any, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value in USER_RANGE:
        return value
    raise ConfigError(
        f'"{key}": "{name}" must have a number between 1024 and 65535, not {json.dumps(value)}'
    )


def _unique_numbers(key: str, numbers: list[int]) -> None:
    if len(set(numbers)) != len(numbers):
        raise ConfigError(f'"{key}" gives the same number to two names')


def _user_metadata(key: str, value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ConfigError(f'"{key}" must be an object mapping names to numbers')
    out = {name: _user_number(key, name, number) for name, number in value.items()}
    _unique_numbers(key, list(out.values()))
    return out


def _user_content_types(key: str, value: Any) -> dict[str, tuple[int, str]]:
    # Orthanc takes {"name": 1024} or {"name": [1024, "mime/type"]}.
    if not isinstance(value, dict):
        raise ConfigError(f'"{key}" must be an object mapping names to numbers')
    out: dict[str, tuple[int, str]] = {}
    for name, spec in value.items():
        if isinstance(spec, list) and len(spec) == 2 and isinstance(spec[1], str):
            out[name] = (_user_number(key, name, spec[0]), spec[1])
        else:
            out[name] = (_user_number(key, name, spec), DEFAULT_MIME)
    _unique_numbers(key, [number for number, _ in out.values()])
    return out


def _megabytes(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigError(f'"{key}" must be a size in megabytes (0: no limit), not {json.dumps(value)}')


def _count(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigError(f'"{key}" must be a number (0: no limit), not {json.dumps(value)}')


def _storage_mode(key: str, value: Any) -> str:
    if value in ("Recycle", "Reject"):
        return str(value)
    raise ConfigError(f'"{key}" must be "Recycle" or "Reject", not {json.dumps(value)}')


def _overwrite(key: str, value: Any) -> bool:
    # Orthanc 1.10 takes a boolean; later releases also take "Never" / "Always".
    if isinstance(value, bool):
        return value
    if value in ("Never", "Always"):
        return value == "Always"
    raise ConfigError(f'"{key}" must be true, false, "Never" or "Always", not {json.dumps(value)}')


def _encoding(key: str, value: Any) -> str:
    if value in ENCODINGS:
        return str(value)
    raise ConfigError(f'"{key}" must be one of {", ".join(ENCODINGS)}, not {json.dumps(value)}')


def _uid_patterns(key: str, value: Any) -> tuple[str, ...]:
    # Orthanc takes one pattern or a list of them (wildcards * and ?).
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f'"{key}" must be a UID pattern or a list of them, not {json.dumps(value)}')


# Orthanc key -> (Config field, validator). Path keys are resolved separately.
_SCALAR_KEYS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "Name": ("name", _string),
    "HttpPort": ("http_port", _port),
    "RemoteAccessAllowed": ("remote_access_allowed", _bool),
    "AuthenticationEnabled": ("authentication_enabled", _bool),
    "RegisteredUsers": ("registered_users", _users),
    "StorageCompression": ("storage_compression", _bool),
    "OverwriteInstances": ("overwrite_instances", _overwrite),
    "StoreMD5ForAttachments": ("store_md5_for_attachments", _bool),
    "HttpDescribeErrors": ("http_describe_errors", _bool),
    "HttpThreadsCount": ("http_threads_count", _positive_int),
    "StableAge": ("stable_age", _stable_age),
    "HttpProcesses": ("http_processes", _process_count),
    "UserMetadata": ("user_metadata", _user_metadata),
    "UserContentType": ("user_content_types", _user_content_types),
    "CheckRevisions": ("check_revisions", _bool),
    "MaximumAttachmentSize": ("maximum_attachment_size", _megabytes),
    "HttpMaximumBodySize": ("http_maximum_body_size", _megabytes),
    "MaximumStorageSize": ("maximum_storage_size", _megabytes),
    "MaximumPatientCount": ("maximum_patient_count", _count),
    "MaximumStorageMode": ("maximum_storage_mode", _storage_mode),
    "LuaHeartBeatPeriod": ("lua_heartbeat_period", _count),
    "ExecuteLuaEnabled": ("execute_lua_enabled", _bool),
    "HttpTimeout": ("http_timeout", _positive_int),
    "PeerMaxRetries": ("peer_max_retries", _count),
    "ConcurrentJobs": ("concurrent_jobs", _positive_int),
    "JobsHistorySize": ("jobs_history_size", _count),
    "DefaultEncoding": ("default_encoding", _encoding),
    "AcceptedTransferSyntaxes": ("accepted_transfer_syntaxes", _uid_patterns),
    "UnknownSopClassAccepted": ("unknown_sop_class_accepted", _bool),
    "LogExportedResources": ("log_exported_resources", _bool),
    "MetricsEnabled": ("metrics_enabled", _bool),
    "LoadPrivateDictionary": ("load_private_dictionary", _bool),
    "Dictionary": ("dictionary", parse_dictionary_option),
}
_PATH_KEYS = {"StorageDirectory": "storage_directory", "IndexDirectory": "index_directory"}

# Keys giving script files; Orthanc's Python plugin takes "PythonScript" and "Python": {"Path"}.
_SCRIPT_KEYS = ("LuaScripts", "PythonScripts", "PythonScript", "Python")

IMPLEMENTED_KEYS = (
    frozenset(_SCALAR_KEYS)
    | frozenset(_PATH_KEYS)
    | {"HotFolders", "OrthancPeers"}
    | frozenset(_SCRIPT_KEYS)
)


def _peers(key: str, value: Any, timeout: int, max_retries: int) -> dict[str, Peer]:
    if not isinstance(value, dict):
        raise ConfigError(f'"{key}" must be an object mapping peer names to definitions')
    try:
        return {
            name: parse_peer(name, spec, timeout=timeout, max_retries=max_retries)
            for name, spec in value.items()
        }
    except BadRequest as exc:
        raise ConfigError(f'"{key}": {exc.details}') from None


def _script_paths(key: str, value: Any, base_dir: Path) -> tuple[Path, ...]:
    """Script files, as a list (``LuaScripts``, ``PythonScripts``), one path
    (``PythonScript``) or Orthanc's ``"Python": {"Path": ...}``."""
    if key == "Python":
        if not isinstance(value, dict) or not isinstance(value.get("Path", ""), str):
            raise ConfigError('"Python" must be an object whose "Path" is a script file')
        value = [value["Path"]] if value.get("Path") else []
    elif key == "PythonScript":
        value = [_string(key, value)]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'"{key}" must be a list of script files')
    return tuple((base_dir / v).resolve() for v in value)


_HOT_FOLDER_KEYS = (
    "Path",
    "Recursive",
    "AfterImport",
    "DonePath",
    "ErrorPath",
    "Polling",
    "SettleSeconds",
)


def _seconds(key: str, value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise ConfigError(f'"{key}" must be a number of seconds (0 or more), not {json.dumps(value)}')


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _hot_folder(key: str, value: Any, base_dir: Path) -> HotFolder:
    """One entry of ``HotFolders``. Unknown keys are errors, not warnings: a misspelt
    ``AfterImport`` would otherwise delete files the user meant to keep."""
    if not isinstance(value, dict):
        raise ConfigError(f'"{key}" must be an object with at least a "Path"')
    unknown = sorted(set(value) - set(_HOT_FOLDER_KEYS))
    if unknown:
        raise ConfigError(
            f'"{key}.{unknown[0]}" is not a hot folder key (known: {", ".join(_HOT_FOLDER_KEYS)})'
        )
    if not value.get("Path"):
        raise ConfigError(f'"{key}.Path" is required: the folder to watch')
    path = (base_dir / _string(f"{key}.Path", value["Path"])).resolve()

    def folder(name: str, suffix: str) -> Path:
        if name not in value:
            return path.with_name(path.name + suffix)
        return (base_dir / _string(f"{key}.{name}", value[name])).resolve()

    after = value.get("AfterImport", "Delete")
    if after not in ("Delete", "Move"):
        raise ConfigError(
            f'"{key}.AfterImport" must be "Delete" or "Move", not {json.dumps(after)}'
        )
    hot = HotFolder(
        path=path,
        done_path=folder("DonePath", "-done"),
        error_path=folder("ErrorPath", "-errors"),
        recursive=_bool(f"{key}.Recursive", value.get("Recursive", True)),
        after_import=after,
        polling=_bool(f"{key}.Polling", value.get("Polling", False)),
        settle_seconds=_seconds(f"{key}.SettleSeconds", value.get("SettleSeconds", 1)),
    )
    for name, target in (("DonePath", hot.done_path), ("ErrorPath", hot.error_path)):
        # A moved file must not land where it would be imported again, forever.
        if target == path or (hot.recursive and _within(target, path)):
            raise ConfigError(f'"{key}.{name}" must be outside the watched folder {path}')
    return hot


def _hot_folders(key: str, value: Any, base_dir: Path) -> tuple[HotFolder, ...]:
    if not isinstance(value, list):
        raise ConfigError(f'"{key}" must be a list of hot folder objects')
    folders = tuple(_hot_folder(f"{key}[{i}]", item, base_dir) for i, item in enumerate(value))
    for i, a in enumerate(folders):
        for j, b in enumerate(folders):
            # Two watchers of one file would import it twice and race to move it.
            if i != j and (a.path == b.path or (b.recursive and _within(a.path, b.path))):
                raise ConfigError(f'"{key}[{i}].Path" overlaps "{key}[{j}].Path"')
    return folders


_COMMENT_OR_STRING = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)


def strip_json_comments(text: str) -> str:
    """Remove ``//`` and ``/* */`` comments that are outside JSON strings."""

    def keep_strings(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith('"'):
            return token
        # Keep line breaks so that JSON error positions still point at the right line.
        return "\n" * token.count("\n") or " "

    return _COMMENT_OR_STRING.sub(keep_strings, text)


def parse_config_text(text: str, source: str = "<config>") -> dict[str, Any]:
    """Parse Orthanc-style JSON with comments into a dict; errors say where."""
    try:
        data = json.loads(strip_json_comments(text))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the configuration must be a JSON object")
    return data


def build_config(data: Mapping[str, Any], base_dir: Path) -> Config:
    """Validate a configuration mapping; relative paths resolve against ``base_dir``."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SCALAR_KEYS:
            attr, check = _SCALAR_KEYS[key]
            values[attr] = check(key, value)
        elif key in _PATH_KEYS:
            values[_PATH_KEYS[key]] = (base_dir / _string(key, value)).resolve()
        elif key == "HotFolders":
            values["hot_folders"] = _hot_folders(key, value, base_dir)
        elif key == "OrthancPeers":
            pass  # below, once HttpTimeout and PeerMaxRetries are known
        elif key in _SCRIPT_KEYS:
            attr = "lua_scripts" if key == "LuaScripts" else "python_scripts"
            values[attr] = values.get(attr, ()) + _script_paths(key, value, base_dir)
        elif key in KNOWN_ORTHANC_KEYS:
            log.info('configuration key "%s" is not implemented by dicomd; ignored', key)
        else:
            log.warning('unknown configuration key "%s" ignored', key)

    if "OrthancPeers" in data:
        values["orthanc_peers"] = _peers(
            "OrthancPeers",
            data["OrthancPeers"],
            values.get("http_timeout", Config.http_timeout),
            values.get("peer_max_retries", Config.peer_max_retries),
        )
    if "storage_directory" not in values:
        values["storage_directory"] = (base_dir / Config.storage_directory).resolve()
    if "index_directory" not in values:
        # As in Orthanc, the index lives beside the storage unless told otherwise.
        values["index_directory"] = values["storage_directory"]
    if "authentication_enabled" not in values:
        # As in Orthanc: opening the server to the network switches authentication on.
        values["authentication_enabled"] = values.get("remote_access_allowed", False)
    if values["authentication_enabled"] and not values.get("registered_users"):
        log.warning(
            "authentication is enabled but RegisteredUsers is empty: every request "
            "will be refused with 401"
        )
    return Config(raw=dict(data), base_dir=base_dir, **values)


def load_config(path: Path | None) -> Config:
    """Load a configuration file, or the embedded defaults when ``path`` is None."""
    if path is None:
        return build_config({}, Path.cwd())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
    return build_config(parse_config_text(text, str(path)), path.resolve().parent)
