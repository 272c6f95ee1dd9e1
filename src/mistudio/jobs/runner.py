"""The in-process job runner: a worker thread pulls pending jobs from a queue and runs their handlers
off the request thread; state lives in the `jobs` table so it survives restarts."""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from typing import Any, Generic, TypeVar

from sqlalchemy import select

from mistudio.db.models import Job as JobRecord
from mistudio.db.models import utcnow
from mistudio.db.session import session_factory
from mistudio.errors import ConflictError, JobCancelled, JobPaused, MiStudioError
from mistudio.jobs.context import JobContext, ProgressListener, require_job
from mistudio.jobs.registry import get_handler
from mistudio.jobs.schemas import Job

S = TypeVar("S")

log = logging.getLogger(__name__)

ACTIVE = ("pending", "running")
FINISHED = ("completed", "failed", "cancelled")


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
        self._listeners: dict[str, ProgressListener] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Mark jobs left `running` by a dead process failed-resumable; return pending job ids."""
        with self._sessions() as s, s.begin():
            for job in s.scalars(select(JobRecord).where(JobRecord.status == "running")):
                job.status = "failed"
                job.resumable = True
                job.error_message = "interrupted: the process stopped while this job ran; resume it to continue"
                job.finished_at = utcnow()
            return list(s.scalars(select(JobRecord.id).where(JobRecord.status == "pending")
                                  .order_by(JobRecord.created_at)))

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
    def create(self, job_type: str, params: dict[str, Any], sae_id: str | None = None) -> str:
        """Create a pending job row and return its id (does not run it)."""
        get_handler(job_type)
        with self._sessions() as s, s.begin():
            job = JobRecord(type=job_type, params=params, sae_id=sae_id, status="pending", stages=[])
            s.add(job)
            s.flush()
            return job.id

    def submit(self, job_type: str, params: dict[str, Any], sae_id: str | None = None) -> str:
        """Create a job and queue it for a background worker."""
        job_id = self.create(job_type, params, sae_id)
        self.enqueue(job_id)
        return job_id

    def enqueue(self, job_id: str) -> None:
        """Queue an existing pending job for a background worker."""
        self._queue.put(job_id)

    def get(self, job_id: str) -> Job:
        """The job's current state.

        Raises:
            NotFoundError: no job `job_id`.
        """
        with self._sessions() as s:
            return Job.from_record(require_job(s, job_id))

    def list(self, limit: int = 100, status: str | None = None, sae_id: str | None = None) -> list[Job]:
        """Most recent jobs first."""
        with self._sessions() as s:
            q = select(JobRecord).order_by(JobRecord.created_at.desc()).limit(limit)
            if status:
                q = q.where(JobRecord.status == status)
            if sae_id:
                q = q.where(JobRecord.sae_id == sae_id)
            return [Job.from_record(j) for j in s.scalars(q)]

    def cancel(self, job_id: str) -> Job:
        """Request cancellation; a pending or paused job is cancelled at once.

        Raises:
            NotFoundError: no job `job_id`.
            ConflictError: the job has already finished.
        """
        with self._sessions() as s, s.begin():
            job = require_job(s, job_id)
            if job.status in FINISHED:
                raise ConflictError(f"job {job_id} already {job.status}")
            if job.status in ("pending", "paused"):
                job.status, job.finished_at = "cancelled", utcnow()
            job.cancel_requested = True
        return self.get(job_id)

    def pause(self, job_id: str) -> Job:
        """Request a pause at the job's next check point.

        Raises:
            NotFoundError: no job `job_id`.
            ConflictError: the job is neither pending nor running.
        """
        with self._sessions() as s, s.begin():
            job = require_job(s, job_id)
            if job.status not in ACTIVE:
                raise ConflictError(f"job {job_id} is {job.status}; only pending or running jobs can be paused")
            if job.status == "pending":
                job.status = "paused"
            job.pause_requested = True
        return self.get(job_id)

    def resume(self, job_id: str) -> Job:
        """Re-queue a paused job or a failed-resumable one; it continues from its last checkpoint.

        Raises:
            NotFoundError: no job `job_id`.
            ConflictError: the job is neither paused nor failed-resumable.
        """
        with self._sessions() as s, s.begin():
            job = require_job(s, job_id)
            if not (job.status == "paused" or (job.status == "failed" and job.resumable)):
                raise ConflictError(f"job {job_id} is {job.status} and cannot be resumed")
            job.status, job.pause_requested, job.cancel_requested = "pending", False, False
            job.error_message, job.finished_at = None, None
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
            job_type, params = job.type, dict(job.params or {})
        ctx = JobContext(job_id, self._sessions, self.studio, listener or self._listeners.get(job_id))
        try:
            result = get_handler(job_type)(ctx, params) or {}
            ctx.finish_stages()
            self._finish(job_id, "completed", result=result, progress=1.0)
        except JobCancelled as exc:
            self._finish(job_id, "cancelled", error=str(exc))
        except JobPaused:
            self._finish(job_id, "paused")
        except MiStudioError as exc:
            self._finish(job_id, "failed", error=exc.message, details=exc.details, resumable=True)
        except Exception as exc:  # noqa: BLE001 - a job must never leave its row hanging
            self._finish(job_id, "failed", error=f"{type(exc).__name__}: {exc}",
                         details={"traceback": traceback.format_exc(limit=20)}, resumable=True)
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
            if status in ("failed", "cancelled"):
                stages = [dict(st) for st in (job.stages or [])]
                for st in stages:
                    if st.get("status") == "running":
                        st["status"] = "failed" if status == "failed" else "cancelled"
                job.stages = stages
