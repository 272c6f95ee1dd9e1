"""The job runner on SQLite and PostgreSQL: completion, failure, cancel, pause/resume, restart safety."""

from __future__ import annotations

import threading
import time

import pytest

from mistudio.db.models import Job
from mistudio.errors import ConflictError, InvalidInputError, NotFoundError
from mistudio.jobs.registry import register_job_type

GATE = threading.Event()


@register_job_type("test_counting")
def _counting(ctx, params):  # noqa: ANN001, ANN202
    ctx.set_stages(["first", "second"])
    ctx.stage("first")
    done = int(params.get("start", 0))
    for i in range(done, params["n"]):
        ctx.check_cancelled(force=True)
        if params.get("wait") and i == params.get("wait_at", 1):
            GATE.wait(5)
        ctx.progress((i + 1) / params["n"], message=f"unit {i}")
    ctx.stage("second")
    return {"units": params["n"]}


@register_job_type("test_failing")
def _failing(ctx, params):  # noqa: ANN001, ANN202
    ctx.stage("only")
    raise InvalidInputError("the input was bad; fix it")


@register_job_type("test_owner")
def _owner(ctx, params):  # noqa: ANN001, ANN202
    return {"owner": ctx.studio.name}


def _wait_for(runner, job_id, statuses, timeout=10.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = runner.get(job_id)
        if state.status in statuses:
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}: {runner.get(job_id)}")


def test_inline_job_completes_with_stage_timings(any_db_studio) -> None:
    runner = any_db_studio.runner
    job_id = runner.create("test_counting", {"n": 5})
    events = []
    state = runner.run_inline(job_id, listener=events.append)
    assert state.status == "completed"
    assert state.result == {"units": 5}
    assert state.progress == 1.0
    assert [st.name for st in state.stages] == ["first", "second"]
    assert all(st.status == "completed" and st.elapsed_s >= 0 for st in state.stages)
    assert events and events[-1]["stage"] == "second"


def test_handlers_get_the_runner_owner(studio) -> None:
    from dataclasses import dataclass

    from mistudio.jobs.runner import JobRunner

    assert studio.runner.studio is studio

    @dataclass
    class Owner:
        name: str

    runner = JobRunner(Owner("notebook"), studio.settings.resolved_database_url)
    state = runner.run_inline(runner.create("test_owner", {}))
    assert state.status == "completed"
    assert state.result == {"owner": "notebook"}


def test_failure_records_message_and_is_resumable(any_db_studio) -> None:
    runner = any_db_studio.runner
    state = runner.run_inline(runner.create("test_failing", {}))
    assert state.status == "failed"
    assert state.error_message == "the input was bad; fix it"
    assert state.stages[0].status == "failed"


def test_background_cancel_and_pause_resume(any_db_studio) -> None:
    runner = any_db_studio.runner
    runner.start()
    try:
        GATE.clear()
        job_id = runner.submit("test_counting", {"n": 3, "wait": True, "wait_at": 1})
        _wait_for(runner, job_id, {"running"})
        runner.cancel(job_id)
        GATE.set()
        state = _wait_for(runner, job_id, {"cancelled"})
        assert state.error_message == "cancelled by the user"
        with pytest.raises(ConflictError):
            runner.cancel(job_id)

        GATE.clear()
        job2 = runner.submit("test_counting", {"n": 3, "wait": True, "wait_at": 1})
        _wait_for(runner, job2, {"running"})
        runner.pause(job2)
        GATE.set()
        _wait_for(runner, job2, {"paused"})
        runner.resume(job2)
        state = _wait_for(runner, job2, {"completed"})
        assert state.result == {"units": 3}
    finally:
        GATE.set()
        runner.stop()


def test_restart_marks_running_jobs_failed_resumable(any_db_studio) -> None:
    runner = any_db_studio.runner
    job_id = runner.create("test_counting", {"n": 2})
    with any_db_studio.sessions() as s, s.begin():
        s.get(Job, job_id).status = "running"  # as if the process died mid-job
    pending = runner.create("test_counting", {"n": 1})
    assert runner.recover() == [pending]
    state = runner.get(job_id)
    assert state.status == "failed" and state.resumable
    assert "interrupted" in state.error_message
    runner.resume(job_id)
    assert runner.run_inline(job_id).status == "completed"


def test_unknown_job_is_not_found(any_db_studio) -> None:
    with pytest.raises(NotFoundError):
        any_db_studio.runner.get("nope")
