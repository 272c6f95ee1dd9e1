"""The in-process job runner: a worker thread pulls pending jobs from a queue and runs their handlers
off the request thread; state lives in the `jobs` table so it survives restarts.

Each running job records the process that runs it (`jobs.liveness`). Whenever jobs are read, one whose process has
died (a killed server or CLI) becomes `interrupted`: resumable from its last checkpoint, its running stage marked
interrupted and its type's own rows told (`registry.register_status_hook`)."""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from mistudio.db.models import Job as JobRecord
from mistudio.db.models import utcnow
from mistudio.db.session import session_factory
from mistudio.errors import ConflictError, JobCancelled, JobPaused, MiStudioError
from mistudio.jobs.context import JobContext, ProgressListener, require_job
from mistudio.jobs.liveness import is_alive, process_token
from mistudio.jobs.registry import get_handler, get_status_hook
from mistudio.jobs.schemas import Job

S = TypeVar("S")

log = logging.getLogger(__name__)

ACTIVE = ("pending", "running")
FINISHED = ("completed", "failed", "cancelled")
# nothing runs them; they wait for the user (resume or cancel)
SETTLED = (*FINISHED, "paused", "interrupted")
RESUMABLE = ("paused", "interrupted")


class JobRunner(Generic[S]):
    """Runs jobs in background worker threads (`start()`), or inline for the CLI (`run_inline`).

    `studio` is the runner's owner, handed to every job handler as `ctx.studio`.
    """

    def __init__(self, studio: S, database_url: str | None = None, workers: int = 1) -> None:
        self.studio = studio
        self._sessions = session_factory(database_url)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._workers = workers
        self._secrets: dict[str, dict[str, str]] = {}  # per job, in memory only: never in the jobs table
        self._listeners: dict[str, ProgressListener] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """At start-up: interrupt the jobs whose process died, and those left `running` without a recorded process
        (rows from before processes were recorded); return the pending job ids, oldest first."""
        with self._sessions() as s, s.begin():
            for job in s.scalars(select(JobRecord).where(JobRecord.status == "running")):
                self._reconcile(s, job, unknown_is_dead=job.runner is None)
            return list(s.scalars(select(JobRecord.id).where(JobRecord.status == "pending")
                                  .order_by(JobRecord.created_at)))

    def reconcile(self, job_id: str | None = None) -> list[str]:
        """Mark the running jobs (or job `job_id`) whose process has died `interrupted`; return their ids."""
        with self._sessions() as s, s.begin():
            q = select(JobRecord).where(JobRecord.status == "running")
            if job_id is not None:
                q = q.where(JobRecord.id == job_id)
            return [job.id for job in s.scalars(q) if self._reconcile(s, job)]

    def _reconcile(self, session: Session, job: JobRecord, unknown_is_dead: bool = False) -> bool:
        """Interrupt `job` if it is running and its process is gone (cancelled instead when a cancel was asked)."""
        if job.status != "running":
            return False
        alive = is_alive(job.runner)
        if alive or (alive is None and not unknown_is_dead):
            return False
        pid = (job.runner or "").split(":")[1:2]
        who = f"pid {pid[0]}" if pid and pid[0] else "its process"
        if job.cancel_requested:
            self._end(session, job, "cancelled", f"cancelled; the process that ran it ({who}) had stopped")
        else:
            self._end(session, job, "interrupted", f"interrupted: the process that ran it ({who}) stopped; resume "
                      "it to continue from its last checkpoint, or cancel it")
        return True

    def _end(self, session: Session, job: JobRecord, status: str, message: str | None) -> None:
        """Move `job` to `status` outside its handler: stages, flags, timestamps, and its type's own rows."""
        job.status = status
        job.resumable = status in RESUMABLE
        job.pause_requested = False
        job.cancel_requested = job.cancel_requested and status != "cancelled"
        if message is not None:
            job.error_message = message
        job.finished_at = utcnow()
        stage_status = "cancelled" if status == "cancelled" else "interrupted"
        stages = [dict(st) for st in (job.stages or [])]
        for st in stages:
            if st.get("status") == "running":
                st["status"] = stage_status
        job.stages = stages
        self._notify(session, job)

    def _notify(self, session: Session, job: JobRecord) -> None:
        hook = get_status_hook(job.type)
        if hook is not None:
            session.flush()
            hook(self.studio, session, job)

    def start(self) -> None:
        """Recover after a restart and start the worker threads."""
        for job_id in self.recover():
            self._queue.put(job_id)
        for i in range(self._workers):
            t = threading.Thread(target=self._work, name=f"mistudio-job-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask workers to stop after their current job."""
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    # -- submission and control ---------------------------------------------------------------------
    def create(self, job_type: str, params: dict[str, Any], sae_id: str | None = None, *,
               secrets: dict[str, str | None] | None = None) -> str:
        """Create a pending job row and return its id (does not run it). `secrets` (tokens) reach the handler
        as `ctx.secret(name)` and are kept in this process's memory only, never in the job's params, which the
        API lists; a job resumed by another process runs without them."""
        get_handler(job_type)
        with self._sessions() as s, s.begin():
            job = JobRecord(type=job_type, params=params, sae_id=sae_id, status="pending", stages=[])
            s.add(job)
            s.flush()
            job_id = job.id
        kept = {name: value for name, value in (secrets or {}).items() if value}
        if kept:
            self._secrets[job_id] = kept
        return job_id

    def submit(self, job_type: str, params: dict[str, Any], sae_id: str | None = None, *,
               secrets: dict[str, str | None] | None = None) -> str:
        """Create a job and queue it for a background worker."""
        job_id = self.create(job_type, params, sae_id, secrets=secrets)
        self.enqueue(job_id)
        return job_id

    def enqueue(self, job_id: str) -> None:
        """Queue an existing pending job for a background worker."""
        self._queue.put(job_id)

    def get(self, job_id: str) -> Job:
        """The job's current state (a running job whose process died reads `interrupted`).

        Raises:
            NotFoundError: no job `job_id`.
        """
        with self._sessions() as s:
            job = require_job(s, job_id)
            if job.status != "running" or is_alive(job.runner) is not False:
                return Job.from_record(job)
        self.reconcile(job_id)
        with self._sessions() as s:
            return Job.from_record(require_job(s, job_id))

    def list(self, limit: int = 100, status: str | None = None, sae_id: str | None = None,
             job_type: str | None = None) -> list[Job]:
        """Most recent jobs first (running jobs whose process died read `interrupted`)."""
        self.reconcile()
        with self._sessions() as s:
            q = select(JobRecord).order_by(JobRecord.created_at.desc()).limit(limit)
            if status:
                q = q.where(JobRecord.status == status)
            if sae_id:
                q = q.where(JobRecord.sae_id == sae_id)
            if job_type:
                q = q.where(JobRecord.type == job_type)
            return [Job.from_record(j) for j in s.scalars(q)]

    def cancel(self, job_id: str) -> Job:
        """End a job: a running one stops at its next check point; any other (pending, paused, interrupted,
        failed — and running in a process that has died) is cancelled at once. Cancelling a cancelled job is a
        no-op.

        Raises:
            NotFoundError: no job `job_id`.
            ConflictError: the job has completed.
        """
        with self._sessions() as s, s.begin():
            job = require_job(s, job_id)
            self._reconcile(s, job)
            if job.status == "completed":
                raise ConflictError(f"job {job_id} already completed; there is nothing to cancel")
            if job.status == "running":
                job.cancel_requested = True
            elif job.status != "cancelled":
                self._end(s, job, "cancelled", "cancelled by the user")
        return self.get(job_id)

    def pause(self, job_id: str) -> Job:
        """Request a pause at the job's next check point.

        Raises:
            NotFoundError: no job `job_id`.
            ConflictError: the job is neither pending nor running.
        """
        with self._sessions() as s, s.begin():
            job = require_job(s, job_id)
            self._reconcile(s, job)
            if job.status not in ACTIVE:
                raise ConflictError(f"job {job_id} is {job.status}; only pending or running jobs can be paused")
            if job.status == "pending":
                job.status = "paused"
                job.resumable = True
            job.pause_requested = True
        return self.get(job_id)

    def resume(self, job_id: str, enqueue: bool = True) -> Job:
        """Re-queue a paused, interrupted or failed-resumable job; it continues from its last checkpoint.
        `enqueue=False` only marks it pending (the caller runs it, e.g. `run_inline`).

        Raises:
            NotFoundError: no job `job_id`.
            ConflictError: the job is not resumable.
        """
        with self._sessions() as s, s.begin():
            job = require_job(s, job_id)
            self._reconcile(s, job)
            if not (job.status in RESUMABLE or (job.status == "failed" and job.resumable)):
                hint = " (it is still running)" if job.status == "running" else ""
                raise ConflictError(f"job {job_id} is {job.status} and cannot be resumed{hint}")
            job.status, job.pause_requested, job.cancel_requested = "pending", False, False
            job.error_message, job.error_details, job.finished_at = None, None, None
            self._notify(s, job)
        if enqueue:
            self._queue.put(job_id)
        return self.get(job_id)

    def add_listener(self, job_id: str, listener: ProgressListener) -> None:
        """Call `listener` with every progress event of `job_id` (used by the CLI's progress bars)."""
        self._listeners[job_id] = listener

    # -- execution --------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self.run_inline(job_id)
            except Exception:  # pragma: no cover - run_inline records failures itself
                log.exception("job %s crashed the worker", job_id)

    def run_inline(self, job_id: str, listener: ProgressListener | None = None) -> Job:
        """Run job `job_id` in this thread to its end and return its final state.

        Raises:
            NotFoundError: no job `job_id`.
        """
        with self._sessions() as s, s.begin():
            job = require_job(s, job_id)
            if job.status != "pending":
                return Job.from_record(job)
            job.status, job.started_at, job.progress = "running", utcnow(), job.progress or 0.0
            job.runner = process_token()
            job_type, params = job.type, dict(job.params or {})
        ctx = JobContext(job_id, self._sessions, self.studio, listener or self._listeners.get(job_id),
                         secrets=self._secrets.get(job_id))
        try:
            result = get_handler(job_type)(ctx, params) or {}
            ctx.finish_stages()
            self._finish(job_id, "completed", result=result, progress=1.0)
        except JobCancelled as exc:
            self._finish(job_id, "cancelled", error=str(exc))
        except JobPaused:
            self._finish(job_id, "paused", resumable=True)
        except MiStudioError as exc:
            self._finish(job_id, "failed", error=exc.message, details=exc.details, resumable=True)
        except Exception as exc:  # noqa: BLE001 - a job must never leave its row hanging
            self._finish(job_id, "failed", error=f"{type(exc).__name__}: {exc}",
                         details={"traceback": traceback.format_exc(limit=20)}, resumable=True)
        except BaseException as exc:  # Ctrl-C, SystemExit: the process is stopping under the job
            with self._sessions() as s, s.begin():
                self._end(s, require_job(s, job_id), "interrupted",
                          f"interrupted ({type(exc).__name__}); resume it to continue from its last checkpoint")
            raise
        return self.get(job_id)

    def _finish(self, job_id: str, status: str, *, result: dict[str, Any] | None = None, error: str | None = None,
                details: dict[str, Any] | None = None, progress: float | None = None,
                resumable: bool = False) -> None:
        with self._sessions() as s, s.begin():
            job = require_job(s, job_id)
            job.status = status
            job.pause_requested = False
            if status != "paused":
                job.finished_at = utcnow()
            if result is not None:
                job.result = result
            if progress is not None:
                job.progress = progress
            if error is not None:
                job.error_message = error
                job.error_details = details
            job.resumable = resumable
            if status in ("completed", "cancelled"):
                self._secrets.pop(job_id, None)
            if status in ("failed", "cancelled", "paused"):
                stages = [dict(st) for st in (job.stages or [])]
                for st in stages:
                    if st.get("status") == "running":
                        st["status"] = status
                job.stages = stages
