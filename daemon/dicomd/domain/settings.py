"""Settings an operator changes at run time through the REST API, as Orthanc allows: the
default encoding, the transfer syntaxes and unknown SOP classes the DICOM server accepts,
the log levels, whether metrics are collected.

They start from the configuration file at each start (Orthanc forgets them on restart too)
and are kept in the index, so that every process of the daemon (the HTTP helpers, the main
process with the DICOM server) sees a change made through any of them: each use reads the
stored value, and the main process also reads them every second, to apply log levels set
through another process.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..config import Config
from ..errors import BadFileFormat, ParameterOutOfRange
from ..storage.index import Index
from .dicomjson import ENCODINGS

log = logging.getLogger(__name__)

# Every transfer syntax the DICOM server knows, in Orthanc's order; "AcceptedTransferSyntaxes"
# patterns select among them.
KNOWN_TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
    *(f"1.2.840.10008.1.2.4.{n}" for n in range(50, 67)),
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    *(f"1.2.840.10008.1.2.4.{n}" for n in range(90, 96)),
    *(f"1.2.840.10008.1.2.4.{n}" for n in range(100, 109)),
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.6.1",
    "1.2.840.10008.1.2.6.2",
)

# Orthanc's verbosities, and the standard logging level each means here.
LOG_LEVELS = {"default": logging.INFO, "verbose": logging.DEBUG, "trace": logging.DEBUG}
# Orthanc's log categories, and the loggers of dicomd (and its libraries) each covers.
LOG_CATEGORIES: dict[str, tuple[str, ...]] = {
    "generic": ("dicomd",),
    "plugins": ("dicomd.scripting.python", "dicomd.scripting.orthanc_compat"),
    "http": ("dicomd.rest",),
    "sqlite": ("dicomd.storage",),
    "dicom": ("dicomd.network", "pynetdicom"),
    "jobs": ("dicomd.peers",),
    "lua": ("dicomd.scripting.lua",),
}

_ENCODING = "DefaultEncoding"
_SYNTAXES = "AcceptedTransferSyntaxes"
_UNKNOWN_SOP = "UnknownSopClassAccepted"
_METRICS = "MetricsEnabled"
_LOG = "LogLevel."  # + category
_STOP = "StopRequested"  # "shutdown" or "reset"


def transfer_syntaxes_matching(patterns: Iterable[str]) -> list[str]:
    """The known transfer syntaxes that match any of ``patterns`` (``*`` and ``?``
    wildcards), in Orthanc's order; a pattern matching none adds nothing."""
    wanted = [p.strip() for p in patterns]
    return [
        uid
        for uid in KNOWN_TRANSFER_SYNTAXES
        if any(fnmatch.fnmatchcase(uid, pattern) for pattern in wanted)
    ]


def parse_transfer_syntaxes(body: bytes) -> list[str]:
    """``PUT /tools/accepted-transfer-syntaxes``: a JSON list of patterns, a JSON string,
    or one pattern as plain text (where Orthanc refuses a plain UID, whose dots read as a
    JSON number, dicomd takes it)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = text  # a plain UID such as 1.2.840.10008.1.2.1
    if isinstance(value, str):
        return transfer_syntaxes_matching([value])
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return transfer_syntaxes_matching(value)
    raise BadFileFormat("A transfer syntax UID, or a JSON list of them, is expected")


class RuntimeSettings:
    """The run-time settings of one daemon, shared by its processes through the index."""

    REFRESH_SECONDS = 1.0

    def __init__(self, config: Config, index: Index, read_only: bool = False) -> None:
        self._config = config
        self._index = index
        self._read_only = read_only
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}
        self._applied_levels: dict[str, str] = {}
        self._listeners: list[Callable[[], None]] = []

    # -- life cycle ------------------------------------------------------------------------
    def reset(self) -> None:
        """At the start of the main process: forget the changes of the previous run."""
        if not self._read_only:
            self._index.clear_runtime_settings()
        for loggers in LOG_CATEGORIES.values():
            for logger in loggers:
                logging.getLogger(logger).setLevel(logging.NOTSET)
        self._applied_levels.clear()
        self.refresh()

    def refresh(self) -> None:
        """Read the settings again (at each use, and in the main process every second),
        applying changed log levels."""
        stored = {k: json.loads(v) for k, v in self._index.runtime_settings().items()}
        with self._lock:
            self._values = stored
        self._apply_log_levels()

    def _get(self, key: str, default: Any) -> Any:
        # Read at each use (one point query of the index, some microseconds), so that a
        # change made through another process counts for the very next request.
        self.refresh()
        with self._lock:
            return self._values.get(key, default)

    def _set(self, key: str, value: Any) -> None:
        self._index.set_runtime_setting(key, json.dumps(value))
        self.refresh()

    # -- default encoding ------------------------------------------------------------------
    def default_encoding(self) -> str:
        """The encoding of files without SpecificCharacterSet (a name of Orthanc's
        ``DefaultEncoding``: Latin1, Utf8, Windows1251...)."""
        return str(self._get(_ENCODING, self._config.default_encoding))

    def set_default_encoding(self, name: str) -> str:
        name = name.strip()
        if name not in ENCODINGS:
            raise ParameterOutOfRange(f"Unknown encoding: {name}")
        self._set(_ENCODING, name)
        return name

    # -- the DICOM server's negotiation ----------------------------------------------------
    def accepted_transfer_syntaxes(self) -> list[str]:
        """The transfer syntax UIDs the DICOM server accepts, in Orthanc's order."""
        stored = self._get(_SYNTAXES, None)
        if stored is None:
            return transfer_syntaxes_matching(self._config.accepted_transfer_syntaxes)
        return list(stored)

    def set_accepted_transfer_syntaxes(self, uids: list[str]) -> list[str]:
        self._set(_SYNTAXES, uids)
        return uids

    def unknown_sop_class_accepted(self) -> bool:
        return bool(self._get(_UNKNOWN_SOP, self._config.unknown_sop_class_accepted))

    def set_unknown_sop_class_accepted(self, accepted: bool) -> None:
        self._set(_UNKNOWN_SOP, accepted)

    # -- metrics ---------------------------------------------------------------------------
    def metrics_enabled(self) -> bool:
        return bool(self._get(_METRICS, self._config.metrics_enabled))

    def set_metrics_enabled(self, enabled: bool) -> None:
        self._set(_METRICS, enabled)

    # -- stopping --------------------------------------------------------------------------
    def request_stop(self, restart: bool) -> None:
        """``/tools/shutdown`` (``restart`` False) or ``/tools/reset`` (True), from any
        process: the main process sees it within a second and stops, or starts again with
        the configuration read anew."""
        self._set(_STOP, "reset" if restart else "shutdown")

    def stop_requested(self) -> str | None:
        """ "shutdown", "reset" or None, as stored now."""
        value = self._index.runtime_settings().get(_STOP)
        return json.loads(value) if value else None

    # -- log levels ------------------------------------------------------------------------
    def log_level(self, category: str | None = None) -> str:
        """Orthanc's verbosity ("default", "verbose" or "trace") of a category, or of the
        whole daemon (that of the "generic" category)."""
        return str(self._get(_LOG + (category or "generic"), self._initial_level()))

    def set_log_level(self, level: str, category: str | None = None) -> None:
        """Set the verbosity of one category, or of every category."""
        level = level.strip()
        if level not in LOG_LEVELS:
            raise ParameterOutOfRange(f'Verbosity can be "default", "verbose" or "trace": {level}')
        categories = [category] if category else list(LOG_CATEGORIES)
        for name in categories:
            self._index.set_runtime_setting(_LOG + name, json.dumps(level))
        self.refresh()

    def _initial_level(self) -> str:
        return (
            "verbose"
            if logging.getLogger("dicomd").getEffectiveLevel() <= logging.DEBUG
            else ("default")
        )

    def _apply_log_levels(self) -> None:
        with self._lock:
            wanted = {
                name: self._values[_LOG + name]
                for name in LOG_CATEGORIES
                if _LOG + name in self._values
            }
        for name, level in wanted.items():
            if self._applied_levels.get(name) == level:
                continue
            self._applied_levels[name] = level
            for logger in LOG_CATEGORIES[name]:
                logging.getLogger(logger).setLevel(LOG_LEVELS[level])
            log.info("log level of %s: %s", name, level)
