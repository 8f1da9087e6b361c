"""The composition root: :class:`Daemon` builds and owns every part, and starts and stops them."""

from __future__ import annotations

import logging
import threading
import time
import warnings
from typing import IO, TYPE_CHECKING, Any

from .config import Config
from .domain.archive import ArchiveService
from .domain.attachments import AttachmentService
from .domain.changes import ChangeLogService
from .domain.exports import ExportLog
from .domain.metadata import MetadataService
from .domain.registry import MetadataNames
from .domain.resources import ResourceService
from .domain.settings import RuntimeSettings
from .errors import StartError, StorageInUse
from .events.delivery import Dispatcher
from .events.handlers import EventSource, Filters
from .events.recycling import Recycler
from .events.scheduler import Scheduler
from .events.stability import StabilityMonitor
from .ingest import IngestPipeline
from .peers.jobs import JobEngine
from .peers.registry import PeerRegistry
from .rest import processes
from .scripting.loader import start_engines
from .services import ScriptEngine, Services
from .storage.index import Index
from .storage.lock import FileLock
from .storage.sqlite_index import SQLiteIndex
from .storage.store import FileStore

if TYPE_CHECKING:
    from .ingest.hotfolders import HotFolders
    from .rest.balance import ConnectionShares
    from .rest.inprocess import InProcessRest
    from .rest.server import HttpServer, PortReservation

log = logging.getLogger(__name__)


def quiet_pydicom() -> None:
    """pydicom warns about the many small defects of real-world files; dicomd stores them
    as Orthanc does, so those warnings are noise, not errors."""
    warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
    logging.getLogger("pydicom").setLevel(logging.ERROR)


class Daemon:
    """One dicomd: index, store, ingest pipeline, resource service and HTTP server.

    The main process (``role="main"``) owns the storage: it repairs it after a crash and
    starts the helper processes that share the HTTP work (``role="helper"``).

    Tools that run scripts on the storage of a stopped daemon (``dicomd replay``) build one
    with ``read_only`` (the index and store are only read: no crash repair, no write), their
    own ``dispatcher`` (to feed the handlers themselves) and a short ``lock_timeout``, then
    call :meth:`start_scripts` instead of :meth:`start`.
    """

    def __init__(
        self,
        config: Config,
        role: str = "main",
        *,
        read_only: bool = False,
        dispatcher: type[Dispatcher] = Dispatcher,
        lock_timeout: float = 15,
    ) -> None:
        quiet_pydicom()
        self.config = config
        self.role = role
        # This process's place among the daemon's HTTP processes (the main one is 0).
        self.http_slot = 0
        # Set by /tools/shutdown and /tools/reset (the latter also sets restart_requested):
        # ``dicomd serve`` waits on it, then stops (and starts again).
        self.stop_requested = threading.Event()
        self.restart_requested = False
        if not read_only:
            config.index_directory.mkdir(parents=True, exist_ok=True)
        self._owner_lock = FileLock(config.index_directory / "dicomd.lock")
        if role == "main":
            # Exclusive while repairing, so that no process of an earlier run (a helper still
            # finishing after its main process was killed) writes meanwhile.
            if not self._owner_lock.try_exclusive(timeout=lock_timeout):
                self._owner_lock.close()
                raise StorageInUse(
                    f"another dicomd is using {config.index_directory}; stop it first"
                )
        else:
            self._owner_lock.shared()
        try:
            self.index: Index = SQLiteIndex(config.index_directory, read_only=read_only)
        except BaseException:
            self._owner_lock.close()
            raise
        self.store = FileStore(config.storage_directory, store_md5=config.store_md5_for_attachments)
        self.settings = RuntimeSettings(config, self.index, read_only)
        self.resources = ResourceService(
            self.index, self.store, self.settings.default_encoding, config.dicom_dictionary
        )
        self.exports = ExportLog(config, self.index)
        metadata_names = MetadataNames(config.user_metadata)
        self.metadata = MetadataService(
            self.index, self.resources, metadata_names, config.check_revisions
        )
        self.changes = ChangeLogService(self.index)
        # Filters decide in every process; notifications are delivered by the main one.
        self.filters = Filters()
        self.events = dispatcher(self.index, EventSource(self.resources, metadata_names))
        self.stability = StabilityMonitor(self.index, lambda _changes: self.events.wake())
        self.scheduler = Scheduler()
        recycler = Recycler(self.resources, metadata_names, self.filters)
        self.ingest = IngestPipeline(
            config,
            self.store,
            self.index,
            recycler,
            self.filters,
            self.events.wake,
            encoding=self.settings.default_encoding,
        )
        self.peers = PeerRegistry(config, self.index)
        self.jobs = JobEngine(
            self.index,
            self.resources,
            self.peers,
            config.concurrent_jobs,
            config.jobs_history_size,
            self.events.wake,
        )
        self.attachments = AttachmentService(self.index, self.store, self.resources, config)
        self.archives = ArchiveService(self.index, self.store)
        # What the outer layers (REST, scripts) get of this daemon.
        self.services = Services(
            config=config,
            role=role,
            index=self.index,
            store=self.store,
            resources=self.resources,
            metadata=self.metadata,
            changes=self.changes,
            attachments=self.attachments,
            archives=self.archives,
            filters=self.filters,
            events=self.events,
            scheduler=self.scheduler,
            ingest=self.ingest,
            peers=self.peers,
            jobs=self.jobs,
            settings=self.settings,
            exports=self.exports,
            rest_client=self.rest_client,
            http_port=lambda: self.http_port,
            script_engines=lambda: self.script_engines,
        )
        self._http: HttpServer | None = None
        self._port: PortReservation | None = None
        self._shares: ConnectionShares | None = None
        self._helpers: processes.HelperProcesses | None = None
        self._app: Any = None  # the Flask app, built once
        self._rest: InProcessRest | None = None
        self._app_lock = threading.Lock()
        self._hot_folders: HotFolders | None = None
        self._script_engines: list[ScriptEngine] = []
        if role == "main":
            if not read_only:
                self._recover()
                self.settings.reset()
            self._owner_lock.shared()

    def _recover(self) -> None:
        """Repair what a crash interrupted: files written but never recorded, and file
        deletions recorded but not finished."""
        orphans = self.store.recover(self.index.known_files)
        pending = self.index.pending_file_deletions()
        if pending:
            self.store.remove(pending)
            self.index.forget_files(pending)
        if orphans or pending:
            log.warning(
                "recovered after an interrupted run: %d unrecorded file(s) deleted, "
                "%d deletion(s) finished",
                orphans,
                len(pending),
            )

    @property
    def http_port(self) -> int:
        if self._port is not None:
            return self._port.port
        if self._http is None:
            raise RuntimeError("the HTTP server is not running")
        return self._http.port

    def start(self) -> None:
        """Start serving HTTP; returns once the daemon answers on its port.

        With one process it serves HTTP and runs the background work. With several
        (``HttpProcesses``), the main process only holds the port and runs the background
        work (event delivery to scripts, stability, jobs, schedules, hot folders), and that
        many helper processes serve HTTP, each binding the port (``SO_REUSEPORT``) so that
        the kernel spreads connections over them: notifications and scripts then never
        compete with uploads for a process's GIL."""
        from .rest.balance import ConnectionShares
        from .rest.server import HttpServer, PortReservation

        config = self.config
        several = config.process_count > 1
        shares = None
        if several:
            shares = ConnectionShares(
                config.index_directory,
                config.process_count + 1,  # the main process's slot stays empty
                self.http_slot,
                create=self.role == "main",
            )
        if self.role == "main" and several:
            assert shares is not None
            self._shares = shares
            self._port = PortReservation(config.bind_address, config.http_port)
            self._helpers = processes.HelperProcesses(config, self._port.port, config.process_count)
            self._helpers.start()
            self._script_engines = start_engines(self.services)
            self._await_helpers(shares)
            self._helpers.watch()
        else:
            app = self._flask_app()
            self._http = HttpServer(
                app,
                config.bind_address,
                config.http_port,
                config.http_threads_count,
                several,
                shares,
            )
            self._http.bind()
            # Scripts before the first request, so that their filters see every request.
            self._script_engines = start_engines(self.services)
            self._http.start()
        if self.role == "main":
            self.stability.start()
            self.events.start()
            # Settings changed through a helper process reach this one within a second.
            self.scheduler.every(
                "runtime-settings", RuntimeSettings.REFRESH_SECONDS, self._refresh_settings
            )
            self.scheduler.start()
            self.jobs.start()
            log.info("dicomd listening on http://%s:%d", config.bind_address, self.http_port)
            self._start_hot_folders()

    def _refresh_settings(self) -> None:
        self.settings.refresh()
        asked = self.settings.stop_requested()
        if asked and not self.stop_requested.is_set():
            self.restart_requested = asked == "reset"
            self.stop_requested.set()

    def _await_helpers(self, shares: ConnectionShares, timeout: float = 120) -> None:
        """Wait until every helper process listens on the port."""
        assert self._helpers is not None
        deadline = time.monotonic() + timeout
        while shares.listening_processes() < self.config.process_count:
            if self._helpers.exited() or time.monotonic() > deadline:
                raise StartError("the HTTP processes did not start; see the log above")
            time.sleep(0.05)

    def start_scripts(self) -> None:
        """Start the script engines and nothing else: no HTTP port, event delivery, jobs,
        scheduler (so no heartbeats), stability monitor or hot folders. For tools that feed
        the scripts' handlers themselves; :meth:`stop` stops them."""
        self._script_engines = start_engines(self.services)

    def _start_hot_folders(self) -> None:
        """Only the main process watches folders, so that no file is imported twice."""
        if not self.config.hot_folders:
            return
        from .ingest.hotfolders import HotFolders

        hot_folders = HotFolders(self.config.hot_folders, self.ingest)
        hot_folders.start()
        self._hot_folders = hot_folders

    @property
    def script_engines(self) -> list[ScriptEngine]:
        """The running script engines (the REST API's execute-script finds Lua's here)."""
        return list(self._script_engines)

    def _flask_app(self) -> Any:
        with self._app_lock:
            if self._app is None:
                from .rest.application import create_app

                self._app = create_app(self.services)
            return self._app

    def rest_client(self) -> InProcessRest:
        """The REST API for scripts, called in process."""
        from .rest.inprocess import InProcessRest

        client = self._rest
        if client is None:
            client = self._rest = InProcessRest(self._flask_app(), self.services)
        return client

    def stop(self) -> None:
        if self._hot_folders is not None:
            # First, while the index and store are open: imports under way finish.
            self._hot_folders.stop()
            self._hot_folders = None
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self._helpers is not None:
            self._helpers.stop()
            self._helpers = None
        if self._port is not None:
            self._port.close()
            self._port = None
        if self._shares is not None:
            self._shares.close()
            self._shares = None
        for engine in self._script_engines:
            try:
                engine.stop()
            except Exception:
                log.exception("stopping a script engine failed")
        self._script_engines = []
        self.jobs.stop()
        self.scheduler.stop()
        self.stability.stop()
        self.events.stop()
        self.store.close()
        self.index.close()
        self._owner_lock.close()


def run_helper(stdin: IO[bytes]) -> int:
    """The body of a helper process (``dicomd serve-helper``): a daemon of role "helper",
    built here like every daemon, serving HTTP for the main process that started it."""

    def build(config: Config, slot: int) -> Daemon:
        daemon = Daemon(config, role="helper")
        daemon.http_slot = slot
        return daemon

    return processes.run_helper(stdin, build)
