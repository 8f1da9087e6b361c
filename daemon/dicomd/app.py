"""The composition root: :class:`Daemon` builds and owns every part, and starts and stops them."""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

from .config import Config
from .ingest import IngestPipeline
from .resources import ResourceService
from .storage.index import Index
from .storage.sqlite_index import SQLiteIndex
from .storage.store import FileStore

if TYPE_CHECKING:
    from .rest.server import HttpServer

log = logging.getLogger(__name__)


def quiet_pydicom() -> None:
    """pydicom warns about the many small defects of real-world files; dicomd stores them
    as Orthanc does, so those warnings are noise, not errors."""
    warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
    logging.getLogger("pydicom").setLevel(logging.ERROR)


class Daemon:
    """One dicomd: index, store, ingest pipeline, resource service and HTTP server."""

    def __init__(self, config: Config) -> None:
        quiet_pydicom()
        self.config = config
        self.index: Index = SQLiteIndex(config.index_directory)
        self.store = FileStore(config.storage_directory, store_md5=config.store_md5_for_attachments)
        self.ingest = IngestPipeline(config, self.store, self.index)
        self.resources = ResourceService(self.index, self.store, config.stable_age)
        self._http: HttpServer | None = None
        self._recover()

    def _recover(self) -> None:
        """Repair what a crash interrupted: staged files and unconfirmed file deletions."""
        published, discarded = self.store.recover(self.index.known_files)
        pending = self.index.pending_file_deletions()
        if pending:
            self.store.remove(pending)
            self.index.forget_files(pending)
        if published or discarded or pending:
            log.warning(
                "recovered after an interrupted run: %d file(s) published, %d "
                "discarded, %d deletion(s) finished",
                published,
                discarded,
                len(pending),
            )

    @property
    def http_port(self) -> int:
        if self._http is None:
            raise RuntimeError("the HTTP server is not running")
        return self._http.port

    def start(self) -> None:
        """Start serving HTTP; returns once the port is bound."""
        from .rest import create_app
        from .rest.server import HttpServer

        app = create_app(self)
        self._http = HttpServer(
            app, self.config.bind_address, self.config.http_port, self.config.http_threads_count
        )
        self._http.start()
        log.info("dicomd listening on http://%s:%d", self.config.bind_address, self.http_port)

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None
        self.store.close()
        self.index.close()
