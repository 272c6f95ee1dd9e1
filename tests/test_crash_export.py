"""SIGKILL a real `mistudio serve` during an export, and a real `mistudio export neuronpedia`: no process is left
behind (checked by pid and process group), the port is free again, the job reads `interrupted` with a
consistent stage list and export record, and resuming it (REST for the server, the same command again for the
CLI) yields the archive an uninterrupted export writes, byte for byte. Linux only (reads /proc)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from mistudio.db.models import ExportRecord
from mistudio.export.config import make_config
from mistudio.export.pipeline import STAGES
from mistudio.export.service import start_export
from mistudio.studio import Studio

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")

MISTUDIO = str(Path(sys.executable).with_name("mistudio"))
# two worker processes, many small batches: the kill lands while the workers write
CONFIG = {"model_id": "tiny-gpt2", "batch_size": 8, "workers": 2}
WRITING = "Writing JSON files"


def _proc_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().decode("ascii", "replace").rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _processes() -> dict[int, tuple[str, int, int]]:
    """pid → (state, ppid, process group) of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _proc_stat(int(entry))):
            out[int(entry)] = (fields[0], int(fields[1]), int(fields[2]))
    return out


def _descendants(root: int) -> set[int]:
    procs = _processes()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (_, ppid, _) in procs.items() if ppid in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int], group: int) -> set[int]:
    """The pids (and members of process group `group`) that still run (zombies have exited)."""
    procs = _processes()
    return {pid for pid, (state, _, pgrp) in procs.items() if (pid in pids or pgrp == group) and state != "Z"}


def _wait_until(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, bytes]:
    """A studio home with the offline demo SAE extracted (built once, by the real command), and the archive an
    uninterrupted export of it writes."""
    home = tmp_path_factory.mktemp("demo") / "home"
    done = subprocess.run([MISTUDIO, "demo", "--n-tokens", "16384", "--json"], env=_env(home), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    sae_id = json.loads(done.stdout)["sae_id"]
    with pytest.MonkeyPatch.context() as m:
        m.setenv("MISTUDIO_HOME", str(home))
        m.delenv("MISTUDIO_DATABASE_URL", raising=False)  # an earlier module's Studio.open may have set it
        reference = _reference(home, sae_id)
    return home, sae_id, reference


@pytest.fixture()
def home(demo_home: tuple[Path, str, bytes], tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str, bytes]]:
    """A copy of the demo home for one test."""
    source, sae_id, reference = demo_home
    target = tmp_path / "home"
    shutil.copytree(source, target)
    monkeypatch.setenv("MISTUDIO_HOME", str(target))
    yield target, sae_id, reference


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "MISTUDIO_HOME": str(home)}
    env.pop("MISTUDIO_DATABASE_URL", None)
    env.pop("MISTUDIO_API_TOKEN", None)
    return env


def _reference(home: Path, sae_id: str) -> bytes:
    """The archive of an uninterrupted export with the same content settings (one process, no workers)."""
    studio = Studio.open(home=home)
    started = start_export(studio, sae_id, make_config(**{**CONFIG, "workers": 1}))
    state = studio.runner.run_inline(started.job_id)
    assert state.status == "completed", state
    return studio.settings.absolute(state.result["output_path"]).read_bytes()


def _kill_while_writing(proc: subprocess.Popen, home: Path, job_id: Callable[[], str | None]) -> tuple[str, set[int]]:
    """Wait until the export writes with its worker processes running and a batch finished; SIGKILL `proc`.
    Return the job id and the processes `proc` had started."""
    def writing() -> tuple[str, set[int]] | None:
        assert proc.poll() is None, "the process ended before it could be killed"
        current = job_id()
        if current is None:
            return None
        if not list((home / "tmp" / f"export-{current}" / ".state").glob("batch-*.json")):
            return None
        children = _descendants(proc.pid)
        # the fork server and both workers (the resource tracker may be there too)
        return (current, children) if len(children) >= 3 else None

    found = _wait_until(writing, 120, "the export to write batches in worker processes", every=0.02)
    assert isinstance(found, tuple)
    current, children = found
    state = Studio.open(home=home).runner.get(current)
    assert state.status == "running" and state.current_stage == WRITING, state
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    return current, children


def _assert_nothing_left(root: int, children: set[int]) -> None:
    left = _wait_until(lambda: not _alive(children, root) or None, 15, "the worker processes to exit")
    assert left, f"processes left behind: {_alive(children, root)}"


def _assert_interrupted(home: Path, job_id: str) -> None:
    studio = Studio.open(home=home)
    state = studio.runner.get(job_id)
    assert state.status == "interrupted" and state.resumable, state
    statuses = {st.name: st.status for st in state.stages}
    assert list(statuses) == STAGES
    writing = STAGES.index(WRITING)
    assert all(statuses[name] == "completed" for name in STAGES[:writing])
    assert statuses[WRITING] == "interrupted"
    assert all(statuses[name] == "pending" for name in STAGES[writing + 1:])
    with studio.sessions() as s:
        assert s.get(ExportRecord, state.params["export_id"]).status == "interrupted"


def test_sigkill_of_the_server_leaves_nothing_and_the_export_resumes_over_rest(
        home: tuple[Path, str, bytes]) -> None:
    folder, sae_id, reference = home
    port = _free_port()
    base = f"http://127.0.0.1:{port}/api/v1"

    def serve() -> subprocess.Popen:
        proc = subprocess.Popen([MISTUDIO, "serve", "--port", str(port)], env=_env(folder), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def up() -> bool:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
            try:
                return httpx.get(f"{base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_until(up, 60, "the server to answer")
        return proc

    server = serve()
    try:
        res = httpx.post(f"{base}/saes/{sae_id}/export/neuronpedia", json={"config": CONFIG}, timeout=10)
        assert res.status_code == 202, res.text
        job_id, children = _kill_while_writing(server, folder, lambda: res.json()["job_id"])
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    _assert_nothing_left(server.pid, children)
    assert _port_is_free(port)
    _assert_interrupted(folder, job_id)

    server = serve()  # the same port: nothing holds it
    try:
        job = httpx.get(f"{base}/jobs/{job_id}", timeout=10).json()
        assert job["status"] == "interrupted" and job["resumable"]
        res = httpx.post(f"{base}/jobs/{job_id}/resume", timeout=10)
        assert res.status_code == 200, res.text

        def finished() -> dict | None:
            state = httpx.get(f"{base}/jobs/{job_id}", timeout=10).json()
            return state if state["status"] not in ("pending", "running") else None

        state = _wait_until(finished, 120, "the resumed export", every=0.25)
        assert isinstance(state, dict) and state["status"] == "completed", state
        assert all(st["status"] == "completed" for st in state["stages"])
        status = httpx.get(f"{base}/saes/{sae_id}/export/status/{job_id}", timeout=10).json()
        assert status["export"]["status"] == "completed"
        archive = httpx.get(f"{base}/saes/{sae_id}/export/download/{job_id}", timeout=30)
        assert archive.status_code == 200 and archive.content == reference
        assert not (folder / "tmp" / f"export-{job_id}").exists()
    finally:
        server.send_signal(signal.SIGTERM)  # an ordinary stop ends the server and its workers
        server.wait(30)
    _assert_nothing_left(server.pid, set())


def test_sigkill_of_the_export_command_leaves_nothing_and_the_same_command_resumes(
        home: tuple[Path, str, bytes], tmp_path: Path) -> None:
    folder, sae_id, reference = home
    config = tmp_path / "export.json"
    config.write_text(json.dumps(CONFIG))
    out = tmp_path / "out.zip"
    command = [MISTUDIO, "export", "neuronpedia", sae_id[:8], "--out", str(out), "--config", str(config), "--json"]
    studio = Studio.open(home=folder)

    def export_job() -> str | None:
        jobs = [j for j in studio.runner.list(job_type="export") if j.status == "running"]
        return jobs[0].id if jobs else None

    proc = subprocess.Popen(command, env=_env(folder), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        job_id, children = _kill_while_writing(proc, folder, export_job)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    _assert_nothing_left(proc.pid, children)
    _assert_interrupted(folder, job_id)
    with studio.sessions() as s:
        assert s.get(ExportRecord, studio.runner.get(job_id).params["export_id"]).status == "interrupted"

    again = subprocess.run(command, env=_env(folder), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming interrupted export job {job_id[:8]}" in again.stderr
    result = json.loads(again.stdout)
    assert result["job_id"] == job_id and result["resumed"] is True
    assert out.read_bytes() == reference
    assert studio.runner.get(job_id).status == "completed"
    assert not (folder / "tmp" / f"export-{job_id}").exists()


def _worker_view(listener_inode: int) -> tuple[int, bool, str]:
    """Run in a pool worker: its pid, whether it holds the test's listening socket, its SIGTERM action."""
    holds = False
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            holds |= os.readlink(f"/proc/self/fd/{fd}") == f"socket:[{listener_inode}]"
    return os.getpid(), holds, str(signal.getsignal(signal.SIGTERM))


def test_pool_workers_share_nothing_with_a_threaded_server_and_stop_on_sigterm() -> None:
    import threading
    import warnings
    from concurrent.futures import ProcessPoolExecutor

    from mistudio.export.workers import pool_context

    context = pool_context()
    assert context.get_start_method() != "fork"
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait, daemon=True)  # as in the API server: other threads are running
    busy.start()
    with socket.socket() as listener, warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # "fork() in a multi-threaded process" is an error here
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            pid, holds_socket, on_term = pool.submit(_worker_view, os.fstat(listener.fileno()).st_ino).result(60)
            assert not holds_socket and on_term == str(signal.SIG_DFL)
            os.kill(pid, signal.SIGTERM)
            _wait_until(lambda: (_proc_stat(pid) or ["Z"])[0] == "Z", 10, "the worker to end on SIGTERM")
    stop.set()
