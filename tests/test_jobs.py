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


@register_job_type("test_secret")
def _secret(ctx, params):  # noqa: ANN001, ANN202
    return {"had_token": ctx.secret("token") == "hf_secret", "missing": ctx.secret("other")}


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
        assert runner.cancel(job_id).status == "cancelled"  # cancelling again changes nothing

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


def _dead_runner_token() -> str:
    """A runner token of a process that has exited (a real child, reaped)."""
    import subprocess
    import sys

    from mistudio.jobs.liveness import process_token

    child = subprocess.run([sys.executable, "-c", "from mistudio.jobs.liveness import process_token as t; "
                            "print(t())"], capture_output=True, text=True, check=True)
    token = child.stdout.strip()
    assert token.split(":")[0] == process_token().split(":")[0]
    return token


def _as_if_killed(studio, job_id, token) -> None:  # noqa: ANN001
    with studio.sessions() as s, s.begin():
        job = s.get(Job, job_id)
        job.status, job.runner = "running", token
        job.stages = [{"name": "first", "status": "completed"}, {"name": "second", "status": "running"}]


def test_a_job_whose_process_died_reads_interrupted_and_resumes(any_db_studio) -> None:
    runner = any_db_studio.runner
    job_id = runner.create("test_counting", {"n": 2})
    _as_if_killed(any_db_studio, job_id, _dead_runner_token())
    state = runner.get(job_id)
    assert state.status == "interrupted" and state.resumable and state.finished_at
    assert "interrupted" in state.error_message and "resume" in state.error_message
    assert [(st.name, st.status) for st in state.stages] == [("first", "completed"), ("second", "interrupted")]
    assert [j.status for j in runner.list()] == ["interrupted"]
    with pytest.raises(ConflictError):
        runner.pause(job_id)
    runner.resume(job_id, enqueue=False)
    final = runner.run_inline(job_id)
    assert final.status == "completed" and final.error_message is None
    assert all(st.status == "completed" for st in final.stages)
    with pytest.raises(ConflictError):
        runner.cancel(job_id)  # nothing to cancel
    with pytest.raises(ConflictError):
        runner.resume(job_id)


def test_a_live_runner_is_not_interrupted_and_cancel_always_ends(any_db_studio) -> None:
    from mistudio.jobs.liveness import process_token

    runner = any_db_studio.runner
    live = runner.create("test_counting", {"n": 2})
    _as_if_killed(any_db_studio, live, process_token())  # this very process: alive
    assert runner.get(live).status == "running"
    assert runner.cancel(live).status == "running"  # asked; the handler stops at its next check point
    elsewhere = runner.create("test_counting", {"n": 2})
    _as_if_killed(any_db_studio, elsewhere, "another-host:1:1")
    assert runner.get(elsewhere).status == "running"  # only the host that ran it can tell
    for status in ("interrupted", "failed", "paused", "pending"):
        job_id = runner.create("test_counting", {"n": 2})
        if status == "interrupted":
            _as_if_killed(any_db_studio, job_id, _dead_runner_token())
        else:
            with any_db_studio.sessions() as s, s.begin():
                s.get(Job, job_id).status = status
        state = runner.cancel(job_id)
        assert state.status == "cancelled" and not state.resumable, status
        assert all(st.status != "running" for st in state.stages)
    asked = runner.create("test_counting", {"n": 2})
    _as_if_killed(any_db_studio, asked, process_token())
    runner.cancel(asked)
    with any_db_studio.sessions() as s, s.begin():
        s.get(Job, asked).runner = _dead_runner_token()  # then its process died
    assert runner.get(asked).status == "cancelled"


def test_restart_interrupts_running_jobs_without_a_recorded_process(any_db_studio) -> None:
    runner = any_db_studio.runner
    job_id = runner.create("test_counting", {"n": 2})
    with any_db_studio.sessions() as s, s.begin():
        s.get(Job, job_id).status = "running"  # a row from before processes were recorded
    pending = runner.create("test_counting", {"n": 1})
    assert runner.get(job_id).status == "running"  # unknown: not judged on a read
    assert runner.recover() == [pending]
    state = runner.get(job_id)
    assert state.status == "interrupted" and state.resumable
    runner.resume(job_id)
    assert runner.run_inline(job_id).status == "completed"


def test_ctrl_c_under_a_job_leaves_it_interrupted(studio) -> None:
    @register_job_type("test_ctrl_c")
    def _ctrl_c(ctx, params):  # noqa: ANN001, ANN202
        ctx.stage("only")
        raise KeyboardInterrupt

    job_id = studio.runner.create("test_ctrl_c", {})
    with pytest.raises(KeyboardInterrupt):
        studio.runner.run_inline(job_id)
    state = studio.runner.get(job_id)
    assert state.status == "interrupted" and state.resumable and state.stages[0].status == "interrupted"


def test_unknown_job_is_not_found(any_db_studio) -> None:
    with pytest.raises(NotFoundError):
        any_db_studio.runner.get("nope")


def test_secrets_reach_the_handler_and_never_the_jobs_table(studio) -> None:
    runner = studio.runner
    job_id = runner.create("test_secret", {"n": 1}, secrets={"token": "hf_secret", "other": None})
    state = runner.run_inline(job_id)
    assert state.result == {"had_token": True, "missing": None}
    assert "hf_secret" not in repr(state.model_dump())
    with studio.sessions() as s:
        assert "hf_secret" not in repr(s.get(Job, job_id).params)
