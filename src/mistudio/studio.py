"""The Studio: one object holding settings, the database and the job runner, shared by the CLI,
the REST API and notebooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from mistudio.db.session import session_factory, upgrade_database
from mistudio.jobs.runner import JobRunner
from mistudio.settings import Settings, get_settings, reset_settings

# environment variables `Studio.open` set itself (the settings are read from the environment)
_SET_BY_OPEN: set[str] = set()


@dataclass
class Studio:
    """Settings + sessions + job runner for one MISTUDIO_HOME; the runner is built with the studio as its owner,
    so every job handler gets this studio as `ctx.studio`."""

    settings: Settings
    sessions: sessionmaker[Session]
    runner: JobRunner[Studio] = field(init=False, repr=False)
    _worker_started: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.runner = JobRunner(self, self.settings.resolved_database_url)

    @classmethod
    def open(cls, home: Path | str | None = None, database_url: str | None = None) -> Studio:
        """Open (creating and migrating if needed) the studio at `home` / `database_url`."""
        if home is not None or database_url is not None:
            import os

            if home is not None:
                os.environ["MISTUDIO_HOME"] = str(home)
                if database_url is None and "MISTUDIO_DATABASE_URL" in _SET_BY_OPEN:
                    # a database an earlier `open` chose must not follow a new home
                    os.environ.pop("MISTUDIO_DATABASE_URL", None)
                    _SET_BY_OPEN.discard("MISTUDIO_DATABASE_URL")
            if database_url is not None:
                os.environ["MISTUDIO_DATABASE_URL"] = database_url
                _SET_BY_OPEN.add("MISTUDIO_DATABASE_URL")
            reset_settings()
        settings = get_settings()
        settings.ensure_dirs()
        url = settings.resolved_database_url
        upgrade_database(url)
        return cls(settings=settings, sessions=session_factory(url))

    def start_worker(self) -> None:
        """Start the background job worker (API server); the CLI runs jobs inline instead."""
        if not self._worker_started:
            self.runner.start()
            self._worker_started = True

    def stop_worker(self) -> None:
        """Stop the background worker."""
        if self._worker_started:
            self.runner.stop()
            self._worker_started = False
