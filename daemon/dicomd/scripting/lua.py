"""Lua scripting with lupa: existing Orthanc Lua scripts run unchanged.

As in Orthanc there are two Lua runtimes, each guarded by its own lock, and each loads the
toolbox then every ``LuaScripts`` file in order; their globals are not shared:

- the **main** runtime gets the notifications (``OnStoredInstance``, ``OnStable*``...),
  ``Initialize``/``Finalize``, ``OnHeartBeat`` and ``/tools/execute-script``;
- the **filter** runtime decides synchronously: ``ReceivedInstanceFilter``,
  ``IncomingHttpRequestFilter`` and dicomd's ``RecyclingFilter``, so a slow notification
  never holds up an upload or a request.

Notifications come from the durable event log through one handler named ``lua``: a callback
interrupted by a crash runs again after the restart. A callback is looked up by its global
name when it is due, as Orthanc does. Editing a script file reloads every script.
This is the only module that imports lupa.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lupa import lua54

from ..domain.model import ChangeType
from ..errors import CannotExecuteLua
from ..events.handlers import Event
from .api import ScriptApi
from .http_client import HttpClient
from .lua_values import LuaValues

if TYPE_CHECKING:
    from ..services import Services

log = logging.getLogger(__name__)

HANDLER_NAME = "lua"
RELOAD_POLL_SECONDS = 1.0
_LEVELS = ("Patient", "Study", "Series", "Instance")
NOTIFICATION_CALLBACKS = (
    "OnStoredInstance",
    *(f"OnStable{level}" for level in _LEVELS[:3]),
    *(f"OnDeleted{level}" for level in _LEVELS),
    *(f"OnUpdated{level}" for level in _LEVELS),
    "OnRecycledPatient",
    "OnJobSubmitted",
    "OnJobSuccess",
    "OnJobFailure",
    "OnHeartBeat",
)
FILTER_CALLBACKS = ("ReceivedInstanceFilter", "IncomingHttpRequestFilter", "RecyclingFilter")
# Which callbacks each kind of event may call (the level picks one).
_BY_TYPE: dict[ChangeType, tuple[str, ...]] = {
    ChangeType.NewInstance: ("OnStoredInstance",),
    ChangeType.StableSeries: ("OnStableSeries",),
    ChangeType.StableStudy: ("OnStableStudy",),
    ChangeType.StablePatient: ("OnStablePatient",),
    ChangeType.Deleted: tuple(f"OnDeleted{level}" for level in _LEVELS),
    ChangeType.UpdatedMetadata: tuple(f"OnUpdated{level}" for level in _LEVELS),
    ChangeType.UpdatedAttachment: tuple(f"OnUpdated{level}" for level in _LEVELS),
    ChangeType.RecycledPatient: ("OnRecycledPatient",),
    ChangeType.JobSubmitted: ("OnJobSubmitted",),
    ChangeType.JobSuccess: ("OnJobSuccess",),
    ChangeType.JobFailure: ("OnJobFailure",),
}


def _toolbox() -> str:
    return resources.files(__package__).joinpath("toolbox.lua").read_text()


def _deny_attributes(obj: Any, name: Any, is_setting: bool) -> Any:
    """Lua sees the Python functions of the toolbox as opaque callables."""
    raise AttributeError(f"access to {name!r} is not allowed from Lua")


@dataclass(frozen=True)
class Deferred:
    """A callback argument computed only if the script looks at it: Lua gets a table that
    fills itself on first use (the toolbox's ``_dicomd_lazy``)."""

    compute: Callable[[], Any]


class LuaScriptError(CannotExecuteLua):
    """A Lua error, with the script's name and line (and the Lua traceback)."""


class LuaRuntime:
    """One Lua state, its lock, the toolbox and the scripts; the Python side of the
    built-in functions. Every use of the state holds ``lock`` (re-entrant: a filter may
    call the REST API that calls the same filter again)."""

    def __init__(self, name: str, api: ScriptApi) -> None:
        self.name = name
        self.api = api
        self.lock = threading.RLock()
        self.capture: list[str] | None = None
        self.http = HttpClient()
        self.lua = lua54.LuaRuntime(
            encoding=None,
            unpack_returned_tuples=True,
            register_eval=False,
            register_builtins=False,
            attribute_filter=_deny_attributes,
        )
        g = self.lua.globals()
        g.python = None
        self.values = LuaValues(
            self.lua.table_from, lambda v: lua54.lua_type(v) == "table", g.tonumber
        )
        g._dicomd = self.lua.table_from(
            {
                b"print": self._print,
                b"parse_json": _safe(self._parse_json),
                b"dump_json": _safe(self._dump_json),
                b"configuration": _safe(lambda: self.values.to_lua(api.configuration())),
                b"rest": _safe(self._rest),
                b"http": _safe(self._http),
                b"set_http_credentials": _safe(self._set_credentials),
                b"set_http_timeout": _safe(lambda s: self.http.set_timeout(float(s))),
                b"set_stable_status": _safe(self._set_stable_status),
            }
        )
        self.lua.execute(_toolbox().encode())
        self.values.fill = g._dicomd_fill
        self._lazy = g._dicomd_lazy
        self._run = g._dicomd_run
        self._call = g._dicomd_call
        self._take_job = g._dicomd_take_job
        self._defined = g._dicomd_defined

    # -- running code ----------------------------------------------------------------------
    def load(self, source: str | bytes, chunk_name: str) -> None:
        """Run a script (a file's content, or ``/tools/execute-script``'s body)."""
        with self.lock:
            ok, error = self._run(self.values.to_bytes(source), ("@" + chunk_name).encode())
        if not ok:
            raise LuaScriptError(self.values.to_text(error))

    def call(self, name: str, *args: Any, convert: bool = True) -> tuple[bool, Any]:
        """Call the global function ``name`` if the scripts define it: ``(defined,
        result)``. Arguments are JSON-like Python values, converted here."""
        with self.lock:
            lua_args = [self._argument(a) for a in args] if convert else list(args)
            answer = self._call(name.encode(), *lua_args)
            if answer is False or answer is None:
                return False, None
            _, ok, result = answer
            if not ok:
                raise LuaScriptError(f"{name}: {self.values.to_text(result)}")
            return True, result

    def _argument(self, value: Any) -> Any:
        if isinstance(value, Deferred):
            compute = value.compute
            return self._lazy(_safe(lambda: self.values.to_lua(compute())))
        return self.values.to_lua(value)

    def defined(self, names: Iterable[str]) -> frozenset[str]:
        with self.lock:
            found = self._defined(self.values.to_lua(list(names)))
            return frozenset(self.values.to_text(v) for v in found.values())

    def take_job(self) -> list[dict[str, Any]]:
        """The operations that SendToPeer, Delete and CallSystem queued, in order."""
        with self.lock:
            job = self.values.from_lua(self._take_job(), keep_strings=True)
        return job if isinstance(job, list) else []

    # -- built-in functions (each returns a Lua value; `_safe` turns errors to Lua) ------
    def _print(self, text: bytes) -> None:
        line = self.values.to_text(text)
        log.warning("Lua says: %s", line)
        if self.capture is not None:
            self.capture.append(line + "\n")

    def _parse_json(self, text: Any) -> Any:
        try:
            return self.values.to_lua(json.loads(self.values.to_text(text)))
        except ValueError:
            return None

    def _dump_json(self, value: Any, keep_strings: Any = False) -> bytes:
        data = self.values.from_lua(value, keep_strings=bool(keep_strings))
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()

    def _rest(self, method: bytes, uri: Any, body: Any, headers: Any) -> Any:
        verb = self.values.to_text(method)
        path = self.values.to_text(uri)
        answer = self.api.rest(
            verb, path, self.values.to_bytes(body), self._lower(self.values.headers(headers))
        )
        ok = answer.ok if verb == "DELETE" else answer.status == 200
        if not ok:
            log.error("Lua: %s %s answered HTTP %d", verb, path, answer.status)
            return None
        return True if verb == "DELETE" else answer.body

    @staticmethod
    def _lower(headers: dict[str, str]) -> dict[str, str]:
        return {k.lower(): v for k, v in headers.items()}

    def _http(self, method: bytes, url: Any, body: Any, headers: Any) -> Any:
        verb = self.values.to_text(method)
        data = self.values.to_bytes(body) if verb in ("POST", "PUT") else None
        return self.http.lua_call(
            verb, self.values.to_text(url), data, self.values.headers(headers)
        )

    def _set_credentials(self, username: Any, password: Any) -> None:
        self.http.set_credentials(self.values.to_text(username), self.values.to_text(password))

    def _set_stable_status(self, resource_id: Any, stable: Any) -> bool | None:
        try:
            return self.api.set_stable_status(self.values.to_text(resource_id), bool(stable))
        except Exception as error:
            log.error("Lua SetStableStatus failed: %s", error)
            return None


def _safe(function: Callable[..., Any]) -> Callable[..., tuple[bool, Any]]:
    """A Python function for Lua that never raises: ``(True, value)`` or ``(False,
    message)``, which the toolbox turns into a Lua error at the caller's line."""

    def call(*args: Any) -> tuple[bool, Any]:
        try:
            return True, function(*args)
        except Exception as error:
            return False, (str(error) or type(error).__name__).encode()

    return call


class LuaEngine:
    """Loads ``LuaScripts`` into the two runtimes and connects their callbacks to the
    daemon: the ``lua`` event handler, the filters, the heartbeat and hot reload."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.api = ScriptApi(services, "Lua")
        self.scripts: tuple[Path, ...] = tuple(services.config.lua_scripts)
        self.name = HANDLER_NAME
        self._is_main = services.role == "main"
        self._main = LuaRuntime("main", self.api)
        self._filter = LuaRuntime("filter", self.api)
        self._callbacks: frozenset[str] = frozenset()
        self._filters_added: set[str] = set()
        self._mtimes: dict[Path, tuple[int, int] | None] = {}
        self._swap = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._handler_registered = False

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Load the scripts (one that fails is logged and skipped), call ``Initialize``,
        and register the handler, filters, heartbeat and the reload watcher."""
        self._mtimes = self._stat()
        self._main, self._filter = self._build(strict=False)
        self._after_load()
        if self._is_main:
            self._lifecycle("Initialize")
            self.services.events.register(self)
            self._handler_registered = True
            period = self.services.config.lua_heartbeat_period
            if period > 0:
                self.services.scheduler.every("lua-heartbeat", period, self._heartbeat)
        if self.scripts:
            self._watcher = threading.Thread(
                target=self._watch, name="dicomd-lua-reload", daemon=True
            )
            self._watcher.start()

    def stop(self) -> None:
        """Stop the watcher, heartbeat, handler and filters, then call ``Finalize``."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None
        self.services.filters.remove(HANDLER_NAME)
        if self._is_main:
            self.services.scheduler.cancel("lua-heartbeat")
            if self._handler_registered:
                self.services.events.unregister(HANDLER_NAME)
                self._handler_registered = False
            self._lifecycle("Finalize")

    def _build(self, strict: bool) -> tuple[LuaRuntime, LuaRuntime]:
        """Two fresh runtimes with every script loaded. ``strict``: the first failing
        script raises (a reload keeps the previous version); otherwise it is skipped."""
        runtimes = LuaRuntime("main", self.api), LuaRuntime("filter", self.api)
        for path in self.scripts:
            try:
                source = path.read_bytes()
                for runtime in runtimes:
                    runtime.load(source, path.name)
            except (OSError, LuaScriptError) as error:
                if strict:
                    raise LuaScriptError(f"{path}: {error}") from error
                log.error("Lua script %s not loaded: %s", path, error)
        return runtimes

    def _after_load(self) -> None:
        """Note the callbacks the scripts define, and register the filters they define
        (a filter once registered stays: it looks its function up at each call)."""
        self._callbacks = self._main.defined(NOTIFICATION_CALLBACKS)
        wanted = self._filter.defined(FILTER_CALLBACKS) - self._filters_added
        filters = self.services.filters
        if "ReceivedInstanceFilter" in wanted:
            filters.add_instance_filter(HANDLER_NAME, self._instance_filter)
        if "IncomingHttpRequestFilter" in wanted:
            filters.add_http_filter(HANDLER_NAME, self._http_filter)
        if "RecyclingFilter" in wanted:
            filters.add_recycling_filter(HANDLER_NAME, self._recycling_filter)
        self._filters_added |= wanted

    def _lifecycle(self, name: str) -> None:
        try:
            self._main.call(name)
            self._run_job(self._main)
        except Exception as error:
            log.error("Lua %s failed: %s", name, error)
        self._callbacks = self._main.defined(NOTIFICATION_CALLBACKS)

    # -- hot reload ------------------------------------------------------------------------
    def _stat(self) -> dict[Path, tuple[int, int] | None]:
        found: dict[Path, tuple[int, int] | None] = {}
        for path in self.scripts:
            try:
                st = path.stat()
                found[path] = (st.st_mtime_ns, st.st_size)
            except OSError:
                found[path] = None
        return found

    def _watch(self) -> None:
        while not self._stopping.wait(RELOAD_POLL_SECONDS):
            current = self._stat()
            if current != self._mtimes:
                self._mtimes = current
                try:
                    self.reload()
                except Exception:
                    log.exception("Lua reload failed")

    def reload(self) -> bool:
        """Load every script again into new runtimes: ``Finalize`` on the old main
        runtime, ``Initialize`` on the new. If a script fails to load, it is reported
        and the previous version keeps running (False)."""
        with self._swap:
            try:
                main, filter_runtime = self._build(strict=True)
            except LuaScriptError as error:
                log.error("Lua scripts not reloaded, the previous version keeps running: %s", error)
                return False
            if self._is_main:
                self._lifecycle("Finalize")
            self._main, self._filter = main, filter_runtime
            self._after_load()
            if self._is_main:
                self._lifecycle("Initialize")
            log.warning("Lua scripts reloaded: %s", ", ".join(p.name for p in self.scripts))
            return True

    # -- notifications (the event handler protocol) ---------------------------------------
    def wants(self, change_type: ChangeType) -> bool:
        names = _BY_TYPE.get(change_type)
        return names is not None and any(n in self._callbacks for n in names)

    def handle(self, event: Event) -> None:
        """Call the event's callback on the main runtime, then run the operations it
        queued. A Lua error raises, so the dispatcher retries and records the failure."""
        name, args = self._arguments(event)
        runtime = self._main
        runtime.call(name, *args)
        self._run_job(runtime)

    @staticmethod
    def _arguments(event: Event) -> tuple[str, tuple[Any, ...]]:
        if event.level is None:  # a job event: Orthanc passes the job's ID alone
            return _BY_TYPE[event.type][0], (event.resource_id,)
        level = event.level.title
        if event.type is ChangeType.NewInstance:
            # The most frequent callback: what it does not read is not looked up.
            tags, metadata = Deferred(event.tags), Deferred(event.metadata)
            origin = Deferred(event.origin)
            return "OnStoredInstance", (event.resource_id, tags, metadata, origin)
        if event.type in (ChangeType.StableSeries, ChangeType.StableStudy):
            return f"OnStable{level}", (event.resource_id, event.tags(), event.metadata())
        if event.type is ChangeType.StablePatient:
            return "OnStablePatient", (event.resource_id, event.tags(), event.metadata())
        if event.type is ChangeType.RecycledPatient:
            return "OnRecycledPatient", (event.resource_id, event.tags(), event.metadata())
        if event.type is ChangeType.Deleted:
            return f"OnDeleted{level}", (event.resource_id,)
        return f"OnUpdated{level}", (event.resource_id,)

    def _heartbeat(self) -> None:
        try:
            self._main.call("OnHeartBeat")
            self._run_job(self._main)
        except LuaScriptError as error:
            log.error("Lua OnHeartBeat failed: %s", error)

    # -- the routing primitives' operations ------------------------------------------------
    def _run_job(self, runtime: LuaRuntime) -> None:
        """Run, in order, what ``SendToPeer``, ``Delete`` and ``CallSystem`` queued; the
        first failure stops the rest (as a failed job of Orthanc's does) and raises."""
        for operation in runtime.take_job():
            kind = operation.get("Operation")
            resource = str(operation.get("Resource", ""))
            if kind == "store-peer":
                self.api.forward(resource, str(operation.get("Peer", "")))
            elif kind == "delete":
                self.api.delete(resource)
            elif kind == "call-system":
                self._call_system(resource, operation)
            else:
                raise LuaScriptError(f"unknown Lua operation {kind!r}")

    def _call_system(self, instance_id: str, operation: dict[str, Any]) -> None:
        """Run a program with the instance written to a temporary file whose path is
        appended to the arguments, as Orthanc's ``CallSystem`` does."""
        answer = self.api.rest("GET", f"/instances/{instance_id}/file")
        if not answer.ok:
            raise LuaScriptError(f"CallSystem: no instance {instance_id}")
        arguments = operation.get("Arguments") or []
        if isinstance(arguments, dict):
            arguments = list(arguments.values())
        with tempfile.TemporaryDirectory(prefix="dicomd-lua-") as folder:
            path = Path(folder) / f"{instance_id}.dcm"
            path.write_bytes(answer.body)
            command = [str(operation.get("Command")), *map(str, arguments), str(path)]
            subprocess.run(command, check=True)

    # -- filters ---------------------------------------------------------------------------
    def _predicate(self, name: str, *args: Any) -> bool:
        runtime = self._filter
        defined, result = runtime.call(name, *args)
        runtime.take_job()  # routing primitives do nothing in these filters, as in Orthanc
        if not defined:
            return True
        if not isinstance(result, bool):
            raise LuaScriptError(f"{name} must return a boolean (NotLuaPredicate)")
        return result

    def _instance_filter(
        self, tags: dict[str, Any], origin: dict[str, str], info: dict[str, Any]
    ) -> bool:
        return self._predicate("ReceivedInstanceFilter", tags, origin, info)

    def _http_filter(
        self, method: str, uri: str, ip: str, username: str, headers: dict[str, str]
    ) -> bool:
        return self._predicate("IncomingHttpRequestFilter", method, uri, ip, username, headers)

    def _recycling_filter(
        self, patient_id: str, tags: dict[str, Any], meta: dict[str, str]
    ) -> bool:
        """``RecyclingFilter``; the forwards it asks for complete before the patient is
        deleted, and if one fails the patient is kept."""
        runtime = self._filter
        defined, result = runtime.call("RecyclingFilter", patient_id, tags, meta)
        if not defined:
            runtime.take_job()
            return True
        if not isinstance(result, bool):
            runtime.take_job()
            raise LuaScriptError("RecyclingFilter must return a boolean (NotLuaPredicate)")
        try:
            self._run_job(runtime)
        except Exception as error:
            log.error(
                "Lua RecyclingFilter: keeping patient %s, an operation failed: %s",
                patient_id,
                error,
            )
            return False
        return result

    # -- /tools/execute-script -------------------------------------------------------------
    def execute(self, source: bytes) -> str:
        """Run Lua code in the main runtime; the captured ``print`` output."""
        runtime = self._main
        with runtime.lock:
            runtime.capture = []
            try:
                runtime.load(source, "execute-script")
                output = "".join(runtime.capture)
            finally:
                runtime.capture = None
        self._run_job(runtime)
        self._callbacks = runtime.defined(NOTIFICATION_CALLBACKS)
        return output
