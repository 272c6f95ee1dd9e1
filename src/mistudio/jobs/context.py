"""What a running job sees: progress, stages, cancellation and pause checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from mistudio.db.models import Job, utcnow
from mistudio.errors import JobCancelled, JobPaused, NotFoundError

ProgressListener = Callable[[dict[str, Any]], None]

S = TypeVar("S")


def require_job(session: Session, job_id: str) -> Job:
    """The job row `job_id`.

    Raises:
        NotFoundError: no job `job_id`.
    """
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    return job


class JobContext(Generic[S]):
    """Handle passed to a job handler. Progress writes are throttled; flags are polled at most 4×/s.

    `studio` is the runner's owner (the `Studio` that runs the job), handed to the handler as it is.
    """

    def __init__(
        self,
        job_id: str,
        sessions: sessionmaker[Session],
        studio: S,
        listener: ProgressListener | None = None,
        min_interval_s: float = 0.25,
        *,
        secrets: dict[str, str] | None = None,
    ) -> None:
        self.job_id = job_id
        self._secrets = dict(secrets or {})
        self.studio = studio
        self._sessions = sessions
        self._listener = listener
        self._min_interval = min_interval_s
        self._last_write = 0.0
        self._last_poll = 0.0
        self._stage: str | None = None
        self._stage_start = 0.0
        self._progress = 0.0
        self._message: str | None = None
        self._stage_progress = 0.0

    def session(self) -> Session:
        """A new database session (the caller closes it)."""
        return self._sessions()

    # -- stages and progress -------------------------------------------------------------------
    def set_stages(self, names: list[str]) -> None:
        """Declare the job's stages up front so a UI can show them all as pending."""
        with self._sessions() as s, s.begin():
            job = require_job(s, self.job_id)
            existing = {st["name"]: st for st in (job.stages or [])}
            job.stages = [existing.get(n, {"name": n, "status": "pending"}) for n in names]

    def _completed_stages(self, job: Job, now: float) -> list[dict[str, Any]]:
        """The job's stage list with the current stage marked completed."""
        stages = [dict(st) for st in (job.stages or [])]
        for st in stages:
            if st["name"] == self._stage and st.get("status") == "running":
                st.update(status="completed", progress=1.0, elapsed_s=round(now - self._stage_start, 3))
        return stages

    def secret(self, name: str) -> str | None:
        """A secret handed to `JobRunner.create` for this job (e.g. a Hub token), or None."""
        return self._secrets.get(name)

    def stage(self, name: str) -> None:
        """Finish the current stage (if any) and start stage `name`."""
        now = time.monotonic()
        with self._sessions() as s, s.begin():
            job = require_job(s, self.job_id)
            stages = self._completed_stages(job, now)
            match = next((st for st in stages if st["name"] == name), None)
            if match is None:
                match = {"name": name}
                stages.append(match)
            match.update(status="running", progress=0.0, started_at=utcnow().isoformat())
            job.stages = stages
            job.current_stage = name
        self._stage, self._stage_start, self._stage_progress = name, now, 0.0
        self._emit(force=True)

    def finish_stages(self) -> None:
        """Mark the running stage completed (called by the runner when the handler returns)."""
        if self._stage is None:
            return
        with self._sessions() as s, s.begin():
            job = require_job(s, self.job_id)
            job.stages = self._completed_stages(job, time.monotonic())

    def progress(self, fraction: float, message: str | None = None, stage_fraction: float | None = None) -> None:
        """Report overall progress in [0, 1] (and optionally the current stage's own fraction)."""
        self._progress = max(0.0, min(1.0, float(fraction)))
        if stage_fraction is not None:
            self._stage_progress = max(0.0, min(1.0, float(stage_fraction)))
        if message is not None:
            self._message = message
        self._emit(force=False)

    def _emit(self, force: bool) -> None:
        now = time.monotonic()
        if self._listener is not None:
            self._listener({"progress": self._progress, "stage": self._stage, "message": self._message,
                            "stage_progress": self._stage_progress})
        if not force and now - self._last_write < self._min_interval:
            return
        self._last_write = now
        with self._sessions() as s, s.begin():
            job = require_job(s, self.job_id)
            job.progress = self._progress
            job.message = self._message
            if self._stage is not None:
                stages = [dict(st) for st in (job.stages or [])]
                for st in stages:
                    if st["name"] == self._stage:
                        st["progress"] = self._stage_progress
                        st["elapsed_s"] = round(now - self._stage_start, 3)
                job.stages = stages

    # -- cooperative control --------------------------------------------------------------------
    def check_cancelled(self, force: bool = False) -> None:
        """Raise JobCancelled if cancel was requested, JobPaused if pause was requested."""
        now = time.monotonic()
        if not force and now - self._last_poll < 0.25:
            return
        self._last_poll = now
        with self._sessions() as s:
            job = require_job(s, self.job_id)
            cancel, pause = job.cancel_requested, job.pause_requested
        if cancel:
            raise JobCancelled("cancelled by the user")
        if pause:
            raise JobPaused("paused by the user")

    def should_cancel(self) -> bool:
        """True if cancel or pause was requested (for callbacks that cannot raise)."""
        try:
            self.check_cancelled(force=True)
        except (JobCancelled, JobPaused):
            return True
        return False
