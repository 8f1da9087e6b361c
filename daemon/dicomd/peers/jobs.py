"""Durable forwarding jobs: ``POST /peers/{name}/store``, Lua ``SendToPeer`` and the Python
forward action all queue an "OrthancPeerStore" job here.

A job lists the instances to send and how far it got; it lives in the index, so it survives
restarts and ``kill -9`` (it resumes at the first instance not yet acknowledged). A send that
fails for a reason that may pass (peer down, 5xx, timeout) puts the job in Retry with an
exponential backoff, and the peer is skipped by every worker until then, so one dead peer
never holds the workers that serve the others. After the peer's ``MaxRetries`` the job fails
and stays visible, with its reason, until resubmitted or deleted (the dead letters). A 4xx
fails at once (it would fail again), unless the job is ``Permissive``. Sending an instance
twice is harmless: the peer answers ``AlreadyStored``.

A job logs JobSubmitted when it is created and JobSuccess or JobFailure when it ends (a
cancel is a failure; a retry or a resubmit logs nothing), in the transaction that changes
its state, so that scripts' ``OnJob*`` callbacks get them even after a crash.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from ..domain.model import JobRecord, Level, now_iso
from ..domain.resources import ResourceService
from ..errors import BadRequest, InexistentItem, UnknownResource
from ..storage.index import Index
from .client import PeerClient, SendError
from .definition import Peer
from .registry import PeerRegistry

log = logging.getLogger(__name__)

STORE_JOB = "OrthancPeerStore"
MAX_BACKOFF = 60.0
FINAL_STATES = ("Success", "Failure")
CANCELED_JOB = 37  # Orthanc's ErrorCode_CanceledJob


def backoff(attempts: int) -> float:
    """Seconds before the next try: 1, 2, 4, ... up to a minute."""
    return min(2.0 ** max(attempts - 1, 0), MAX_BACKOFF)


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1e6):06d}"


class JobEngine:
    POLL = 0.2
    SAVE_INTERVAL = 0.2

    def __init__(
        self,
        index: Index,
        resources: ResourceService,
        peers: PeerRegistry,
        workers: int,
        history: int,
        on_event: Callable[[], None] = lambda: None,
    ) -> None:
        self.index = index
        self._on_event = on_event  # a job event was logged: deliver it now
        self.resources = resources
        self.peers = peers
        self.client = PeerClient()
        self.worker_count = workers
        self.history = history
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._backoff: dict[str, float] = {}  # peer -> until when nobody sends to it
        self._lock = threading.Lock()

    # -- submitting ------------------------------------------------------------------------
    def submit_store(
        self,
        peer_name: str,
        resource_ids: Iterable[str],
        *,
        priority: int = 0,
        compress: bool = False,
        permissive: bool = False,
        user_data: Any = None,
        description: str = "REST API",
    ) -> JobRecord:
        """Queue the sending of these resources (any level) to a peer."""
        self.peers.get(peer_name)
        ids = list(resource_ids)
        if not ids:
            raise BadRequest("No resource to send")
        instances: list[str] = []
        for public_id in ids:
            resource = self.resources.index.lookup(public_id)
            if resource is None:
                raise UnknownResource(f"Unknown resource: {public_id}", empty_body=False)
            if resource.level is Level.INSTANCE:
                instances.append(public_id)
            else:
                instances += self.resources.children(
                    resource.level, public_id, Level.INSTANCE, expand=False
                )
        job = JobRecord(
            id=str(uuid.uuid4()),
            type=STORE_JOB,
            state="Pending",
            priority=priority,
            created=time.time(),
            data={
                "Peer": peer_name,
                "Description": description,
                "ParentResources": ids,
                "InstancesCount": len(instances),
                "Position": 0,
                "Failed": 0,
                "Size": 0,
                "Attempts": 0,
                "Compress": compress,
                "Permissive": permissive,
                "UserData": user_data,
                "ErrorCode": 0,
                "ErrorDescription": "Success",
                "ErrorDetails": "",
            },
        )
        self.index.create_job(job, instances)
        self._on_event()
        self._wake.set()
        return job

    def wait(
        self, job_id: str, timeout: float | None = None, until_retry: bool = False
    ) -> JobRecord:
        """Until the job succeeds or fails (synchronous stores), or, with ``until_retry``,
        until a send fails for the first time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.state in FINAL_STATES or (until_retry and job.state == "Retry"):
                return job
            if deadline is not None and time.monotonic() > deadline:
                return job
            time.sleep(0.05)

    # -- control ---------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord:
        job = self.index.get_job(job_id)
        if job is None:
            raise UnknownResource(f"Unknown job: {job_id}")
        return job

    def pause(self, job_id: str) -> None:
        self._control(job_id, "pause", "Paused")

    def cancel(self, job_id: str) -> None:
        self._control(job_id, "cancel", "Failure")

    def _control(self, job_id: str, control: str, state: str) -> None:
        job = self.get(job_id)
        if job.state in FINAL_STATES:
            return
        if job.state == "Running":
            self.index.set_job_control(job_id, control)
            return
        job.state = state
        if control == "cancel":
            self._cancelled(job)
        self._save(job)

    def resume(self, job_id: str) -> None:
        job = self.get(job_id)
        if job.state == "Paused":
            job.state = "Pending"
            job.next_attempt = 0.0
            self._save(job)
            self._wake.set()

    def resubmit(self, job_id: str) -> None:
        """Run a failed job again, from the first instance it did not send (no new
        JobSubmitted, as in Orthanc: it ends with JobSuccess or JobFailure again)."""
        job = self.get(job_id)
        if job.state != "Failure":
            raise BadRequest("Only a failed job can be resubmitted")
        job.state = "Pending"
        job.completed = None
        job.next_attempt = 0.0
        job.data.update(Attempts=0, ErrorCode=0, ErrorDescription="Success", ErrorDetails="")
        self._save(job)
        self._wake.set()

    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        if job.state not in FINAL_STATES:
            raise BadRequest("Only a completed job can be deleted; cancel it first")
        self.index.delete_job(job_id)

    # -- running ---------------------------------------------------------------------------
    def start(self) -> None:
        resumed = self.index.requeue_running_jobs()
        if resumed:
            log.warning("%d job(s) interrupted by a stop resume now", resumed)
        for number in range(self.worker_count):
            thread = threading.Thread(target=self._work, name=f"dicomd-jobs-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def _work(self) -> None:
        try:
            self._work_loop()
        finally:
            self.client.close_thread_connections()

    def _work_loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.index.claim_job(time.time(), self._peers_backing_off())
            except Exception:
                log.exception("cannot read the job queue")
                job = None
            if job is None:
                self._wake.wait(self.POLL)
                self._wake.clear()
                continue
            try:
                self._run(job)
            except Exception as exc:
                log.exception("job %s failed unexpectedly", job.id)
                self._fail(job, -1, "Internal error", str(exc))
                self._save(job)

    def _peers_backing_off(self) -> list[str]:
        now = time.time()
        with self._lock:
            return [peer for peer, until in self._backoff.items() if until > now]

    def _run(self, job: JobRecord) -> None:
        data = job.data
        try:
            peer = self.peers.get(data["Peer"])
        except InexistentItem as exc:
            self._fail(job, 7, "Inexistent item", str(exc))
            self._save(job)
            return
        instances = self.index.job_instances(job.id)
        saved = time.monotonic()
        while data["Position"] < len(instances):
            if self._stop.is_set():
                job.state = "Pending"  # resumes at the next start
                self._save(job)
                return
            if self._controlled(job):
                return
            if not self._send_one(job, peer, instances[data["Position"]]):
                return
            data["Position"] += 1
            data["Attempts"] = 0
            # The position is saved every SAVE_INTERVAL: after a crash, the instances sent
            # since are sent again, which the peer answers AlreadyStored.
            if time.monotonic() - saved >= self.SAVE_INTERVAL:
                self._save(job)
                saved = time.monotonic()
        job.state = "Success"
        job.completed = time.time()
        self._save(job)
        self.index.trim_job_history(self.history)
        log.info("job %s: %d instance(s) sent to %s", job.id, len(instances), peer.name)

    def _controlled(self, job: JobRecord) -> bool:
        """A pause or cancel asked while the job was running."""
        control = self.index.job_control(job.id)
        if control is None:
            return False
        job.control = None
        if control == "pause":
            job.state = "Paused"
        else:
            self._cancelled(job)
        self._save(job)
        return True

    def _send_one(self, job: JobRecord, peer: Peer, instance_id: str) -> bool:
        """Send one instance; False when the job must stop here (retry later, or failed)."""
        data = job.data
        try:
            body = self.resources.instance_file(instance_id)
        except UnknownResource:
            data["Failed"] += 1  # deleted since the job was created: nothing to send
            return True
        try:
            self.client.request(
                peer, "POST", "/instances", body, compress=data["Compress"], keep_alive=True
            )
        except SendError as exc:
            if exc.retryable:
                return self._retry_later(job, peer, str(exc))
            if data["Permissive"]:
                data["Failed"] += 1
                return True
            self._fail(job, 9, "Error in the network protocol", str(exc))
            self._save(job)
            return False
        data["Size"] += len(body)
        with self._lock:
            self._backoff.pop(peer.name, None)
        return True

    def _retry_later(self, job: JobRecord, peer: Peer, reason: str) -> bool:
        data = job.data
        data["Attempts"] += 1
        if data["Attempts"] > peer.max_retries:
            log.error(
                "job %s gives up on %s after %d attempts: %s",
                job.id,
                peer.name,
                data["Attempts"],
                reason,
            )
            self._fail(job, 9, "Error in the network protocol", reason)
        else:
            delay = backoff(data["Attempts"])
            job.state = "Retry"
            job.next_attempt = time.time() + delay
            data["ErrorDetails"] = reason
            with self._lock:
                self._backoff[peer.name] = job.next_attempt
            log.warning("job %s: %s; retry %d in %.0f s", job.id, reason, data["Attempts"], delay)
        self._save(job)
        return False

    def _save(self, job: JobRecord) -> None:
        """Save the job; the index logs JobSuccess or JobFailure with its end."""
        if self.index.save_job(job) is not None:
            self._on_event()

    @staticmethod
    def _fail(job: JobRecord, code: int, description: str, details: str) -> None:
        job.state = "Failure"
        job.completed = time.time()
        job.data.update(ErrorCode=code, ErrorDescription=description, ErrorDetails=details)

    @classmethod
    def _cancelled(cls, job: JobRecord) -> None:
        """Orthanc's CanceledJob error, which scripts test to tell a cancel from a failure."""
        cls._fail(job, CANCELED_JOB, "This job was canceled", "canceled by a user")

    # -- Orthanc's JSON --------------------------------------------------------------------
    @staticmethod
    def content(job: JobRecord) -> dict[str, Any]:
        data = job.data
        return {
            "Description": data["Description"],
            "InstancesCount": data["InstancesCount"],
            "FailedInstancesCount": data["Failed"],
            "Peer": [data["Peer"]],
            "Compress": data["Compress"],
            "Size": str(data["Size"]),
            "SizeMB": data["Size"] // (1024 * 1024),
            "ParentResources": data["ParentResources"],
        }

    def describe(self, job: JobRecord) -> dict[str, Any]:
        """``GET /jobs/{id}``."""
        data = job.data
        total = data["InstancesCount"]
        progress = (
            100 if job.state == "Success" else (100 * data["Position"] // total if total else 0)
        )
        out: dict[str, Any] = {
            "ID": job.id,
            "Type": job.type,
            "State": job.state,
            "Priority": job.priority,
            "Progress": progress,
            "CreationTime": _iso(job.created),
            "Timestamp": now_iso(),
            "EffectiveRuntime": 0.0,
            "ErrorCode": data["ErrorCode"],
            "ErrorDescription": data["ErrorDescription"],
            "ErrorDetails": data["ErrorDetails"],
            "Content": self.content(job),
            "Attempts": data["Attempts"],
        }
        if data.get("UserData") is not None:
            out["UserData"] = data["UserData"]
        if job.completed is not None:
            out["CompletionTime"] = _iso(job.completed)
        if job.state == "Retry":
            out["NextAttempt"] = _iso(job.next_attempt)
        return out
