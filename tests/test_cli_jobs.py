"""`mistudio jobs list|show|resume|cancel`, the one id resolver every command uses (full id, unique prefix,
"not found", "ambiguous"), and commands that compute nothing starting without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mistudio.cli.main import app
from mistudio.db.models import Job, SAERecord
from mistudio.jobs.registry import register_job_type
from mistudio.studio import Studio

runner = CliRunner()


@register_job_type("test_cli_steps")
def _steps(ctx, params):  # noqa: ANN001, ANN202
    ctx.set_stages(["one", "two"])
    ctx.stage("one")
    ctx.stage("two")
    return {"done": True}


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _dead_token() -> str:
    child = subprocess.run([sys.executable, "-c", "from mistudio.jobs.liveness import process_token as t; "
                            "print(t())"], capture_output=True, text=True, check=True)
    return child.stdout.strip()


def _interrupted_job(studio: Studio) -> str:
    job_id = studio.runner.create("test_cli_steps", {})
    with studio.sessions() as s, s.begin():
        job = s.get(Job, job_id)
        job.status, job.runner = "running", _dead_token()
        job.stages = [{"name": "one", "status": "running"}, {"name": "two", "status": "pending"}]
    return job_id


def test_jobs_list_show_resume_cancel(studio: Studio) -> None:
    job_id = _interrupted_job(studio)
    listed = _json(["jobs", "list", "--json"])["items"]
    assert [(j["id"], j["status"]) for j in listed] == [(job_id, "interrupted")]
    table = runner.invoke(app, ["jobs", "list"], terminal_width=200)
    assert table.exit_code == 0 and job_id[:8] in table.output and "interrupted" in table.output
    shown = runner.invoke(app, ["jobs", "show", job_id[:8]], terminal_width=200)
    assert shown.exit_code == 0 and f"mistudio jobs resume {job_id[:8]}" in shown.output
    assert _json(["jobs", "show", job_id, "--json"])["stages"][0]["status"] == "interrupted"

    resumed = _json(["jobs", "resume", job_id[:8], "--json"])
    assert resumed["status"] == "completed" and resumed["result"] == {"done": True}
    again = runner.invoke(app, ["jobs", "resume", job_id])
    assert again.exit_code == 1 and "cannot be resumed" in again.output

    other = _interrupted_job(studio)
    assert _json(["jobs", "cancel", other, "--json"])["status"] == "cancelled"
    assert _json(["jobs", "list", "--status", "cancelled", "--json"])["items"][0]["id"] == other
    done = runner.invoke(app, ["jobs", "cancel", job_id])
    assert done.exit_code == 1 and "already completed" in done.output
    assert runner.invoke(app, ["jobs", "show", "nope"]).exit_code == 1


def _sae_row(studio: Studio, sae_id: str, status: str = "ready") -> None:
    with studio.sessions() as s, s.begin():
        s.add(SAERecord(id=sae_id, name=f"sae {sae_id}", source="upload", status=status, d_in=4, d_sae=8))


@pytest.mark.parametrize("command", [["sae", "show"], ["sae", "stats"], ["features"], ["feature", "{id}", "0"],
                                     ["export", "neuronpedia", "{id}", "--out", "x.zip"], ["extract"],
                                     ["export", "estimate"], ["sae", "delete", "{id}", "--yes"]])
def test_every_command_resolves_ids_the_same_way(studio: Studio, command: list[str]) -> None:
    _sae_row(studio, "abc11111-0000-0000-0000-000000000000")
    _sae_row(studio, "abc22222-0000-0000-0000-000000000000")

    def run(sae: str):  # noqa: ANN202
        args = [a.replace("{id}", sae) for a in command]
        return runner.invoke(app, args if "{id}" in " ".join(command) else [*args, sae])

    missing = run("nope")
    assert missing.exit_code == 1 and "SAE 'nope' not found" in missing.output, missing.output
    assert len(missing.output.strip().splitlines()) == 1
    ambiguous = run("abc")
    assert ambiguous.exit_code == 1 and "ambiguous" in ambiguous.output
    assert "abc11111-0000-0000-0000-000000000000" in ambiguous.output
    assert "abc22222-0000-0000-0000-000000000000" in ambiguous.output
    unique = run("abc1")  # resolves; what follows may fail for this bare row (no files, no extraction)
    assert "SAE 'abc1'" not in unique.output and "ambiguous" not in unique.output


def _imports_after(code: str, home: Path) -> set[str]:
    """Modules loaded after running `code` in a fresh interpreter."""
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    env = {"MISTUDIO_HOME": str(home), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize("argv", [["--help"], ["sae", "list"], ["sae", "list", "--json"], ["jobs", "list"],
                                  ["exports", "list"]])
def test_commands_that_compute_nothing_do_not_import_torch(argv: list[str], isolated_home: Path) -> None:
    code = ("from mistudio.cli.main import app\n"
            f"try:\n    app({argv!r})\nexcept SystemExit as exc:\n    assert not exc.code, exc.code")
    loaded = _imports_after(code, isolated_home)
    assert "mistudio.cli.main" in loaded
    assert not {"torch", "transformers", "safetensors.torch"} & loaded


def test_sae_show_counts_the_features_list_counts(studio: Studio) -> None:
    from mistudio.db.models import Extraction

    _sae_row(studio, "def00000-0000-0000-0000-000000000000", status="error")  # no files to read a config from
    with studio.sessions() as s, s.begin():
        s.add(Extraction(sae_id="def00000-0000-0000-0000-000000000000", status="completed", n_features=8,
                         model_name="m", dataset="d"))
    listed = _json(["sae", "list", "--json"])["items"][0]
    assert listed["n_features_extracted"] == 8
    shown = _json(["sae", "show", "def0", "--json"])
    assert shown["n_features_extracted"] == 8 and shown["latest_extraction_id"] == listed["latest_extraction_id"]
