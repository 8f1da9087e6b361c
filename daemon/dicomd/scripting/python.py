"""The Python script engine: loads each configured ``.py`` file as an isolated user module,
registers what it asked for, and reloads it when the file changes.

- A script that fails to import is logged with its traceback; the other scripts still load.
- Reload: the file's mtime is polled every ``RELOAD_INTERVAL`` seconds; the new version is
  executed first, and only if that succeeds are the old version's callbacks unregistered
  and the new ones registered. A broken edit keeps the previous version running.
- Threading: each script has one notification handler (``python:<name>``), so its callbacks
  run in that handler's thread in log order, in parallel with other scripts' handlers and
  with no global lock. Filters and routes run in the requesting thread. Notifications,
  heartbeats and the started/stopped hooks run in the main process only; filters and
  routes in every process.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import types
from pathlib import Path
from typing import TYPE_CHECKING

from .context import CURRENT, LoadedScript, ScriptHandler
from .orthanc_compat import make_orthanc_module

if TYPE_CHECKING:
    from ..services import Services

log = logging.getLogger(__name__)


class PythonEngine:
    """Runs the scripts of ``config.python_scripts``."""

    RELOAD_INTERVAL = 1.0

    def __init__(self, services: Services) -> None:
        self.services = services
        self.main = services.role == "main"
        self._paths = list(services.config.python_scripts)
        self._names = _unique_names(self._paths)
        self._active: dict[Path, LoadedScript] = {}
        self._mtimes: dict[Path, float] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        for path in self._paths:
            self._load(path)
        self._thread = threading.Thread(
            target=self._watch, name="dicomd-python-reload", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            scripts = list(self._active.values())
            self._active.clear()
        for script in scripts:
            self._deactivate(script)

    def loaded(self) -> dict[str, LoadedScript]:
        """The scripts running now, by name."""
        with self._lock:
            return {s.name: s for s in self._active.values()}

    # -- loading ---------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(self.RELOAD_INTERVAL):
            for path in self._paths:
                if self._mtime(path) != self._mtimes.get(path):
                    self._load(path)

    @staticmethod
    def _mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return -1.0

    def _load(self, path: Path) -> None:
        """Load (or reload) one script; on failure keep the version that runs."""
        self._mtimes[path] = self._mtime(path)
        self._generation += 1
        script = LoadedScript(self.services, path, self._names[path], self._generation)
        try:
            script.module = self._execute(script)
        except BaseException:
            log.exception("Python script %s failed to load; %s", path, self._kept(path))
            return
        with self._lock:
            previous = self._active.get(path)
            self._active[path] = script
        if previous is not None:
            self._deactivate(previous)
            log.warning("Python script %s reloaded", path)
        self._activate(script)

    def _kept(self, path: Path) -> str:
        return "its previous version keeps running" if path in self._active else "not running"

    @staticmethod
    def _execute(script: LoadedScript) -> types.ModuleType:
        """Execute the file as a fresh module, with ``import orthanc`` giving this
        script's compatibility module. The script's folder is on ``sys.path`` (as in
        Orthanc) so that it can import its helper modules."""
        spec = importlib.util.spec_from_file_location(script.path.stem, script.path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {script.path}")
        module = importlib.util.module_from_spec(spec)
        folder = str(script.path.parent)
        if folder not in sys.path:
            sys.path.append(folder)
        saved = {name: sys.modules.get(name) for name in (spec.name, "orthanc")}
        sys.modules["orthanc"] = make_orthanc_module(script)
        sys.modules[spec.name] = module
        token = CURRENT.set(script)
        try:
            spec.loader.exec_module(module)
        finally:
            CURRENT.reset(token)
            for name, value in saved.items():
                if value is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = value
        return module

    # -- registering -----------------------------------------------------------------------
    def _activate(self, script: LoadedScript) -> None:
        services, owner, registered = self.services, script.owner, script.registered
        for recycling in registered.recycling_filters:
            services.filters.add_recycling_filter(owner, script.wrap(recycling))
        for instance in registered.instance_filters:
            services.filters.add_instance_filter(owner, script.wrap(instance))
        for http in registered.http_filters:
            services.filters.add_http_filter(owner, script.wrap(http))
        if registered.routes:
            routes = services.rest_client().script_routes
            for regex, methods, function in registered.routes:
                routes.add(owner, regex, script.wrap(function), methods)
        if not self.main:
            return
        if registered.events:
            services.events.register(ScriptHandler(script))
        for number, (seconds, beat) in enumerate(registered.heartbeats):
            services.scheduler.every(f"{owner}:heartbeat:{number}", seconds, script.wrap(beat))
        for started in registered.started:
            self._call(script, started, "start-up hook")

    def _deactivate(self, script: LoadedScript) -> None:
        services, owner, registered = self.services, script.owner, script.registered
        services.filters.remove(owner)
        if registered.routes:
            services.rest_client().script_routes.remove(owner)
        if not self.main:
            return
        if registered.events:
            services.events.unregister(script.handler_name)
        for number in range(len(registered.heartbeats)):
            services.scheduler.cancel(f"{owner}:heartbeat:{number}")
        for stopping in registered.stopping:
            self._call(script, stopping, "stop hook")

    @staticmethod
    def _call(script: LoadedScript, function: object, what: str) -> None:
        try:
            script.run(function)  # type: ignore[arg-type]
        except Exception:
            script.log.exception("%s of %s failed", what, script.path)


def _unique_names(paths: list[Path]) -> dict[Path, str]:
    """Each script's name is its file stem, made unique with a number if two share one."""
    names: dict[Path, str] = {}
    for path in paths:
        name, number = path.stem, 1
        while name in names.values():
            number += 1
            name = f"{path.stem}-{number}"
        names[path] = name
    return names
