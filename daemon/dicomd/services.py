"""The services the outer layers get: what the REST API, the script engines and, later, the
DICOM server and the admin page may use of the core, built by the composition root
(:class:`~dicomd.app.Daemon`). They receive this, never the daemon itself, so that no layer
reaches back into the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .config import Config
from .domain.archive import ArchiveService
from .domain.attachments import AttachmentService
from .domain.changes import ChangeLogService
from .domain.exports import ExportLog
from .domain.metadata import MetadataService
from .domain.resources import ResourceService
from .domain.settings import RuntimeSettings
from .events.delivery import Dispatcher
from .events.handlers import Filters
from .events.scheduler import Scheduler
from .ingest import IngestPipeline
from .peers.jobs import JobEngine
from .peers.registry import PeerRegistry
from .storage.index import Index
from .storage.store import FileStore

if TYPE_CHECKING:
    from .scripting.actions import ActionLog
    from .scripting.routes import ScriptRoutes


@dataclass
class RestAnswer:
    """The answer of a REST call made without HTTP (in process, or a direct view)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class RestCaller(Protocol):
    """The REST API called in process (by scripts), and the routes scripts add to it."""

    @property
    def script_routes(self) -> ScriptRoutes: ...

    def call(
        self,
        method: str,
        uri: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        origin: str = "Plugins",
        builtin: bool = False,
    ) -> RestAnswer: ...


class ScriptEngine(Protocol):
    """What the daemon needs of a script engine."""

    def start(self) -> None:
        """Load the scripts and register their handlers and filters."""
        ...

    def stop(self) -> None:
        """Unregister everything and call the scripts' finalisers."""
        ...


@dataclass(eq=False)
class Services:
    """The core services of one daemon process, and the few run-time facts the outer layers
    read (``role``: "main" or "helper"; the HTTP port; the running script engines)."""

    config: Config
    role: str
    index: Index
    store: FileStore
    resources: ResourceService
    metadata: MetadataService
    changes: ChangeLogService
    attachments: AttachmentService
    archives: ArchiveService
    filters: Filters
    events: Dispatcher
    scheduler: Scheduler
    ingest: IngestPipeline
    peers: PeerRegistry
    jobs: JobEngine
    settings: RuntimeSettings
    exports: ExportLog
    rest_client: Callable[[], RestCaller]
    http_port: Callable[[], int]
    script_engines: Callable[[], list[ScriptEngine]]
    # What scripts do, when a tool asks for a record of it (test-script, replay).
    action_log: ActionLog | None = None
    # The DIMSE services of the DICOM server and client: {"scp": (...), "scu": (...)}.
    network_services: Callable[[], dict[str, tuple[str, ...]]] = field(default_factory=lambda: dict)
