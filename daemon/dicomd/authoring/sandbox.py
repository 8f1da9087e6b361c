"""A throwaway daemon for trying scripts, used by ``dicomd test-script`` and the pytest
plugin.

It keeps its storage in a folder of its own, serves HTTP on a free loopback port, records
every action the scripts take (forwards are recorded, not sent, unless asked), makes every
resource stable at once when asked to settle, and collects the errors the scripts raise with
their script lines.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset

from ..config import build_config, parse_config_text
from ..domain.model import Origin
from ..scripting.actions import ACTION_KINDS, Action, ActionLog
from .report import ErrorCollector, action_lines, error_lines
from .synthetic import dataset_bytes

if TYPE_CHECKING:
    from ..app import Daemon
    from ..ingest.pipeline import IngestResult
    from ..storage.index import HandlerFailure

# What can be uploaded: a file's bytes, a file's path, or a pydicom dataset.
Upload = bytes | str | Path | Dataset

_UPLOAD_ORIGIN = Origin(request_origin="RestApi", remote_ip="127.0.0.1")
# Keys the sandbox sets itself: its own storage, a free loopback port, one process, the
# scripts it is given and no hot folders.
_REPLACED_KEYS = ("HotFolders", "LuaScripts", "PythonScripts", "PythonScript", "Python")


class ScriptSandbox:
    """A daemon in a folder of its own running ``scripts`` (``.lua`` files are Lua, others
    Python) with ``config``: settings, or a configuration file whose relative paths count
    from its folder. Relative paths in settings count from ``base`` (the current folder by
    default). ``send``: forwards are really sent to the peers. ``folder``: where the
    storage goes; a temporary folder, deleted at :meth:`stop`, by default.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        scripts: Iterable[str | Path],
        config: Mapping[str, Any] | Path | None = None,
        *,
        send: bool = False,
        folder: Path | None = None,
        base: Path | None = None,
    ) -> None:
        self.scripts = [Path(script).resolve() for script in scripts]
        if isinstance(config, Path):
            self._settings = parse_config_text(config.read_text(encoding="utf-8"), str(config))
            self._base = config.resolve().parent
        else:
            self._settings = dict(config or {})
            self._base = base or Path.cwd()
        self.send = send
        self._folder = folder
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        self._daemon: Daemon | None = None
        self._log = ActionLog()
        self._collector = ErrorCollector()
        self._failures: list[str] = []

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> ScriptSandbox:
        """Start the daemon with the scripts loaded; returns once it answers HTTP."""
        from ..app import Daemon

        if self._daemon is not None:
            raise RuntimeError("the sandbox is already running")
        logging.getLogger().addHandler(self._collector)
        try:
            storage = self._make_folder() / "storage"
            settings = {k: v for k, v in self._settings.items() if k not in _REPLACED_KEYS}
            settings.update(
                StorageDirectory=str(storage),
                IndexDirectory=str(storage),
                HttpPort=0,
                HttpProcesses=1,
                RemoteAccessAllowed=False,
                LuaScripts=[str(p) for p in self.scripts if p.suffix == ".lua"],
                PythonScripts=[str(p) for p in self.scripts if p.suffix != ".lua"],
            )
            self._daemon = Daemon(build_config(settings, self._base))
            self._log = self._daemon.services.action_log = ActionLog(
                dry=() if self.send else {"forward"}
            )
            self._daemon.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _make_folder(self) -> Path:
        if self._folder is not None:
            return self._folder
        self._temporary = tempfile.TemporaryDirectory(prefix="dicomd-sandbox-")
        return Path(self._temporary.name)

    def stop(self) -> None:
        """Stop the daemon (its port closes) and delete its temporary folder. What the
        scripts did and the errors they raised stay readable."""
        daemon, self._daemon = self._daemon, None
        try:
            if daemon is not None:
                try:
                    self._failures = _describe_failures(daemon)
                finally:
                    daemon.stop()
        finally:
            logging.getLogger().removeHandler(self._collector)
            if self._temporary is not None:
                self._temporary.cleanup()
                self._temporary = None

    def __enter__(self) -> ScriptSandbox:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def daemon(self) -> Daemon:
        """The running daemon, for what the sandbox does not offer itself."""
        if self._daemon is None:
            raise RuntimeError("the sandbox is not running")
        return self._daemon

    @property
    def url(self) -> str:
        """The base URL of its REST API, on loopback."""
        return f"http://127.0.0.1:{self.daemon.http_port}"

    # -- input -----------------------------------------------------------------------------
    def upload(self, item: Upload) -> IngestResult:
        """Store one instance through the real ingest pipeline, as a REST upload; its
        ``status`` (Success, AlreadyStored, FilteredOut) and ``ids`` (``ids.instance``,
        ``ids.series``, ``ids.study``, ``ids.patient``). What is not DICOM raises
        :class:`~dicomd.errors.BadFileFormat`."""
        results = self._ingest(item)
        if len(results) != 1:
            raise ValueError(f"{len(results)} instances in one upload: use upload_all()")
        return results[0]

    def upload_all(self, items: Iterable[Upload]) -> list[IngestResult]:
        """Store several instances: datasets, files, ZIP archives and folders (walked)."""
        results: list[IngestResult] = []
        for item in items:
            if isinstance(item, str | Path) and Path(item).is_dir():
                for path in files_under([Path(item)]):
                    results += self._ingest(path)
            else:
                results += self._ingest(item)
        return results

    def _ingest(self, item: Upload) -> list[IngestResult]:
        if isinstance(item, Dataset):
            data = dataset_bytes(item)
        elif isinstance(item, bytes):
            data = item
        else:
            data = Path(item).read_bytes()
        result = self.daemon.ingest.ingest_upload(data, _UPLOAD_ORIGIN)
        return result if isinstance(result, list) else [result]

    def settle(self, timeout: float = 60) -> None:
        """Make every series, study and patient stable now, instead of after
        ``StableAge``, and wait until the scripts have handled every event; raises
        ``TimeoutError`` if they are still busy after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._idle():
                time.sleep(0.3)  # the last events' follow-ups (a forward job, a stable event)
                if self._idle():
                    return
            time.sleep(0.1)
        raise TimeoutError(f"the scripts did not finish within {timeout:.0f} s")

    def _idle(self) -> bool:
        index = self.daemon.index
        deadline = index.next_stable_deadline()
        if deadline is not None:
            if deadline > 0:
                index.expire_stability()  # also what the scripts stored meanwhile
            return False
        handlers = self.daemon.events.status()["Handlers"]
        return not any(h["Backlog"] for h in handlers if "Delivered" in h)

    # -- what the scripts did --------------------------------------------------------------
    def actions(
        self, kind: str | None = None, target: str | None = None, **details: Any
    ) -> list[Action]:
        """The actions the scripts took, in order; only those of this ``kind`` (see
        :data:`~dicomd.scripting.actions.ACTION_KINDS`), on this ``target`` (a resource ID,
        or a URI for "rest") and with these ``details`` (e.g. ``peer="pacs"``), if given."""
        if kind is not None and kind not in ACTION_KINDS:
            raise ValueError(
                f"unknown action kind {kind!r}: one of {', '.join(sorted(ACTION_KINDS))}"
            )
        return [
            action
            for action in self._log.actions()
            if (kind is None or action.kind == kind)
            and (target is None or action.target == target)
            and all(action.details.get(k, _ABSENT) == v for k, v in details.items())
        ]

    def forwards(self) -> list[tuple[str, str]]:
        """The forwards requested, in order, as (resource ID, peer)."""
        return [(action.target, action.details["peer"]) for action in self.actions("forward")]

    @property
    def errors(self) -> list[str]:
        """Every error the scripts raised (with the script's file and line) and every event
        a handler gave up on after its retries."""
        failures = self._failures if self._daemon is None else _describe_failures(self._daemon)
        return failures + self._collector.messages

    def report(self) -> str:
        """The actions and errors so far, one line each, as ``dicomd test-script`` prints
        them."""
        return "\n".join(action_lines(self._log.actions()) + error_lines(self.errors))

    # -- assertions for tests --------------------------------------------------------------
    def assert_action(self, kind: str, target: str | None = None, **details: Any) -> list[Action]:
        """Fail, listing what the scripts did, unless they took such an action; the
        matching actions."""
        __tracebackhide__ = True
        found = self.actions(kind, target, **details)
        if not found:
            raise AssertionError(f"no {_wanted(kind, target, details)} recorded\n{self.report()}")
        return found

    def assert_no_action(self, kind: str, target: str | None = None, **details: Any) -> None:
        """Fail, listing what the scripts did, if they took such an action."""
        __tracebackhide__ = True
        found = self.actions(kind, target, **details)
        if found:
            raise AssertionError(
                f"{len(found)} unexpected {_wanted(kind, target, details)}\n{self.report()}"
            )

    def assert_no_errors(self) -> None:
        """Fail, listing them, if the scripts raised errors."""
        __tracebackhide__ = True
        if self.errors:
            raise AssertionError(f"the scripts raised errors\n{self.report()}")


_ABSENT = object()


def _wanted(kind: str, target: str | None, details: dict[str, Any]) -> str:
    words = [f"{kind!r} action"]
    if target is not None:
        words.append(f"on {target}")
    if details:
        words.append("with " + ", ".join(f"{k}={v!r}" for k, v in details.items()))
    return " ".join(words)


def _describe_failures(daemon: Daemon) -> list[str]:
    return [_describe_failure(f) for f in daemon.index.handler_failures(0, 10_000)]


def _describe_failure(failure: HandlerFailure) -> str:
    change = failure.change
    return (
        f"{failure.handler} failed on {change.change_type.name} {change.public_id} "
        f"({failure.attempts} attempts): {failure.error}"
    )


def files_under(paths: Iterable[Path]) -> Iterator[Path]:
    """The files given, and the files below the folders given, in a stable order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path
