"""The training run end to end on a tiny GPT-2: the activation stream against the extraction's own inputs, the
shuffling buffer (no position twice, every position once), pause/kill + resume equal to an uninterrupted run,
several SAEs from one forward, the job/CLI/REST surfaces and the trained SAE as a first-class catalogued SAE."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mistudio.datasets.sources import load_texts
from mistudio.datasets.windows import tokenize_windows
from mistudio.errors import JobPaused
from mistudio.extraction.engine import BatchEncoder, ExtractionSettings
from mistudio.lm.loading import load_model
from mistudio.lm.tokens import special_token_ids
from mistudio.saes.model import SAE, SAEConfig
from mistudio.testing.tiny_models import build_tiny_model
from mistudio.training.activations import POSITION, ActivationStream, HookRead
from mistudio.training.config import SAESpec
from mistudio.training.run import METRICS, RunConfig, RunStopped, checkpoint_tokens, run_training

CONTEXT = 32
HOOK0, HOOK1 = "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"
runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("gpt2", tmp_path_factory.mktemp("tiny") / "gpt2")


@pytest.fixture(scope="module")
def loaded(model_dir: Path):  # noqa: ANN201
    return load_model(str(model_dir), device="cpu", dtype="float32")


def _windows(loaded, n: int):  # noqa: ANN001, ANN202
    return tokenize_windows(load_texts("builtin:corpus"), loaded.tokenizer, context_size=CONTEXT, n_windows=n,
                            seed=3)


def _encoder_inputs(loaded, windows, hook: str, head: int | None, d_in: int) -> torch.Tensor:  # noqa: ANN001
    """The extraction's own SAE inputs for every window ([n, C, d_in]): the oracle of the stream."""
    sae = SAE(SAEConfig(d_in=d_in, d_sae=4, architecture="standard", hook_name=hook, hook_head_index=head))
    encoder = BatchEncoder(loaded, sae, windows, ExtractionSettings(), None, None, device=torch.device("cpu"))
    return torch.cat([encoder.inputs(torch.arange(lo, min(lo + 8, len(windows))))[0]
                      for lo in range(0, len(windows), 8)])


def test_stream_serves_the_extraction_inputs_once_each_and_resumes_exactly(loaded) -> None:  # noqa: ANN001
    windows = _windows(loaded, 24)
    hooks = [HookRead(HOOK0), HookRead("transformer.h.1.output"), HookRead("blocks.1.attn.hook_z", head_index=1)]
    oracles = {HOOK0: _encoder_inputs(loaded, windows, HOOK0, None, 64),
               "transformer.h.1.output": _encoder_inputs(loaded, windows, "transformer.h.1.output", None, 64),
               "blocks.1.attn.hook_z": _encoder_inputs(loaded, windows, "blocks.1.attn.hook_z", 1, 16)}

    def stream() -> ActivationStream:
        return ActivationStream(loaded, windows, hooks, batch_tokens=64, buffer_windows=6, forward_batch_windows=4,
                                seed=5)

    full = stream()
    batches = []
    forwards = []
    handle = loaded.model.register_forward_pre_hook(lambda module, args: forwards.append(1))
    try:
        while (batch := full.next_batch()) is not None:
            batches.append(batch)
    finally:
        handle.remove()
    assert len(forwards) == 24 // 4  # one forward per 4 windows feeds all three hooks
    positions = torch.cat([b[POSITION] for b in batches])
    # every served row is the extraction's input at its position, at every hook (one shared permutation)
    for name, oracle in oracles.items():
        rows = torch.cat([b[name] for b in batches])
        expected = oracle.reshape(-1, oracle.shape[-1])[positions]
        assert torch.equal(rows, expected), name
    # no position twice; special tokens never; every other position served except a last partial batch
    tokens = windows.tokens.reshape(-1)
    special = torch.tensor(special_token_ids(loaded.tokenizer))
    trainable = (~torch.isin(tokens, special)).nonzero().squeeze(1)
    assert len(set(positions.tolist())) == len(positions)
    assert not torch.isin(tokens[positions], special).any()
    assert set(positions.tolist()) <= set(trainable.tolist())
    assert len(trainable) - len(positions) < 64 and len(trainable) > len(positions)
    assert (windows.tokens[:, 0] == loaded.tokenizer.eos_token_id).all()  # BOS windows: position 0 is excluded
    assert not (positions[:64] == torch.sort(positions[:64]).values).all()  # shuffled, not in window order
    # two epochs: the second pass reads the windows again in another order; a position once per epoch
    twice = ActivationStream(loaded, windows, hooks[:1], batch_tokens=64, buffer_windows=6, forward_batch_windows=4,
                             seed=5, epochs=2)
    served = []
    while (batch := twice.next_batch()) is not None:
        served.append(batch)
    both = torch.cat([b[POSITION] for b in served])
    assert len(set(both.tolist())) == len(both) and len(both) > 1.9 * len(positions)
    assert torch.equal(torch.cat([b[HOOK0] for b in served]), oracles[HOOK0].reshape(-1, 64)[both % tokens.numel()])
    assert torch.bincount(both % tokens.numel()).max() == 2
    # a stream restored from a mid-run state serves exactly the rest
    first = stream()
    for _ in range(3):
        first.next_batch()
    state = {k: v.clone() for k, v in first.state_dict().items()}
    resumed = stream()
    resumed.load_state_dict(state)
    rest = []
    while (batch := resumed.next_batch()) is not None:
        rest.append(batch)
    assert len(rest) == len(batches) - 3
    for a, b in zip(rest, batches[3:], strict=True):
        assert torch.equal(a[POSITION], b[POSITION]) and torch.equal(a[HOOK0], b[HOOK0])


def _config(model_dir: Path, **overrides) -> RunConfig:  # noqa: ANN003
    specs = [SAESpec(architecture="topk", hook_name=HOOK0, d_in=64, d_sae=128, k=8, seed=1),
             SAESpec(architecture="standard", hook_name=HOOK1, d_in=64, d_sae=96, seed=2)]
    values = {"model": str(model_dir), "dataset": "builtin:corpus", "specs": specs, "n_tokens": 10 * 128,
              "batch_tokens": 128, "context_size": CONTEXT, "eval_windows": 2, "eval_every_tokens": 10 * 128,
              "checkpoint_every_tokens": 3 * 128, "buffer_windows": 12, "forward_batch_windows": 6, "seed": 7,
              "norm_sample_windows": 12, **overrides}
    return RunConfig(**values)


def _weights(saes: list[SAE]) -> list[dict[str, torch.Tensor]]:
    return [{k: v.detach().clone() for k, v in sae.state_dict().items()} for sae in saes]


def _curves(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / METRICS).read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in rows]


def test_paused_then_killed_run_resumes_to_the_uninterrupted_weights(loaded, model_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    cfg = _config(model_dir)
    straight = run_training(loaded, cfg, tmp_path / "straight")
    assert straight.tokens_seen == 10 * 128 and straight.steps == 10 and len(straight.saes) == 2
    assert [sae.cfg.hook_name for sae in straight.saes] == [HOOK0, HOOK1]  # two SAEs, one forward per batch
    assert set(straight.norm_factors) == {HOOK0, HOOK1}
    evals = [json.loads(line) for line in (tmp_path / "straight" / "evals.jsonl").read_text().splitlines()]
    assert [row["tokens"] for row in evals] == [10 * 128] and len(evals[-1]["saes"]) == 2
    assert 0 < straight.evals[0]["l0"] <= 8

    # paused before step 5 (a checkpoint at the pause), resumed, then killed after step 8 (its last checkpoint at
    # step 6, so the next resume replays steps 7-8 from there)
    calls = {"n": 0}

    def pause_at_step_5() -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise JobPaused("paused by the user")

    run_dir = tmp_path / "interrupted"
    with pytest.raises(JobPaused):
        run_training(loaded, cfg, run_dir, check=pause_at_step_5)
    assert checkpoint_tokens(run_dir) == 4 * 128
    with pytest.raises(RunStopped):
        run_training(loaded, cfg, run_dir, stop_after_tokens=8 * 128)
    assert checkpoint_tokens(run_dir) == 6 * 128
    resumed = run_training(loaded, cfg, run_dir)
    assert resumed.resumed_from_tokens == 6 * 128

    assert resumed.tokens_seen == straight.tokens_seen
    for got, want in zip(_weights(resumed.saes), _weights(straight.saes), strict=True):
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want)
    assert resumed.evals == straight.evals
    assert _curves(run_dir) == _curves(tmp_path / "straight")


def _train_args(model_dir: Path, *extra: str) -> list[str]:
    return ["train", "--model", str(model_dir), "--hook", HOOK0, "--architecture", "topk", "--d-sae", "128",
            "--k", "8", "--n-tokens", str(8 * 128), "--batch-tokens", "128", "--context-size", str(CONTEXT),
            "--eval-windows", "2", *extra]


def test_cli_trains_catalogues_and_the_sae_loads_in_saelens_and_extracts(model_dir: Path,
                                                                          isolated_home: Path) -> None:
    from sae_lens import SAE as SAELensSAE

    from mistudio.catalog.service import load_sae_for
    from mistudio.cli.main import app
    from mistudio.studio import Studio

    result = runner.invoke(app, _train_args(model_dir, "--also", "k=4,name=narrow", "--json"))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and len(rows) == 2
    for row in rows:
        assert set(row) == {"sae_id", "training_id", "metrics"}
        assert set(row["metrics"]) == {"explained_variance", "l0", "dead_fraction", "ce_loss_recovered", "kl_div"}
        assert all(isinstance(v, float) for v in row["metrics"].values())
    assert rows[1]["metrics"]["l0"] <= 4 < rows[0]["metrics"]["l0"] <= 8

    shown = json.loads(runner.invoke(app, ["training", "show", rows[0]["training_id"][:8], "--json"]).stdout)
    assert shown["status"] == "completed" and shown["sae_id"] == rows[0]["sae_id"]
    assert shown["tokens_seen"] == 8 * 128 and shown["wall_time_s"] > 0 and shown["device"] == "cpu"
    assert shown["architecture"] == "topk" and shown["dataset"] == "builtin:corpus"
    hp = shown["hyperparameters"]
    assert hp["k"] == 8 and hp["d_sae"] == 128 and hp["batch_tokens"] == 128 and hp["schedule"]["total_steps"] == 8
    assert hp["norm_scaling_factor"] > 0 and hp["context_size"] == CONTEXT
    assert shown["metrics"]["explained_variance"] == rows[0]["metrics"]["explained_variance"]
    listed = json.loads(runner.invoke(app, ["training", "list", "--json"]).stdout)["items"]
    assert {t["id"] for t in listed} == {r["training_id"] for r in rows}

    studio = Studio.open()
    sae_row = json.loads(runner.invoke(app, ["sae", "show", rows[0]["sae_id"], "--json"]).stdout)
    assert sae_row["source"] == "trained" and sae_row["training_id"] == rows[0]["training_id"]
    folder = studio.settings.absolute(sae_row["local_path"])
    theirs = SAELensSAE.load_from_disk(str(folder), device="cpu")
    ours = load_sae_for(studio, rows[0]["sae_id"])
    x = torch.randn(5, 64) * 3
    assert torch.allclose(theirs.encode(x), ours.encode(x), atol=1e-5)

    extracted = runner.invoke(app, ["extract", rows[0]["sae_id"], "--n-tokens", "512", "--no-neuronpedia", "--json"])
    assert extracted.exit_code == 0, extracted.output
    assert json.loads(extracted.stdout)["n_features"] == 128


def test_rerun_after_sigkill_resumes_from_the_last_checkpoint(model_dir: Path, isolated_home: Path) -> None:
    from mistudio.cli.main import app

    args = _train_args(model_dir, "--checkpoint-every-tokens", "256", "--eval-every-tokens", "100000")
    args[args.index("--n-tokens") + 1] = str(16 * 128)
    proc = subprocess.Popen([sys.executable, "-m", "mistudio.cli.main", *args, "--json"], env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        states = list(isolated_home.glob("trainings/*/checkpoint/state.json"))
        while not states and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            states = list(isolated_home.glob("trainings/*/checkpoint/state.json"))
        assert states, "the training never wrote a checkpoint"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    at_kill = checkpoint_tokens(states[0].parent.parent)
    assert 0 < at_kill < 16 * 128

    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "resuming training job" in result.output and "from its checkpoint" in result.output
    listed = json.loads(runner.invoke(app, ["training", "list", "--json"]).stdout)["items"]
    assert len(listed) == 1 and listed[0]["status"] == "completed" and listed[0]["tokens_seen"] == 16 * 128
    jobs = json.loads(runner.invoke(app, ["jobs", "list", "--json"]).stdout)
    items = jobs["items"] if isinstance(jobs, dict) else jobs
    job = next(j for j in items if j["id"] == listed[0]["job_id"])
    assert job["result"]["resumed_from_tokens"] >= at_kill


def test_pausing_the_job_and_starting_the_same_request_resumes_it(model_dir: Path, studio) -> None:  # noqa: ANN001
    from mistudio.catalog.service import get_training
    from mistudio.training.schemas import TrainRequest
    from mistudio.training.service import start_training

    request = TrainRequest(model=str(model_dir), hook=HOOK0, architecture="jumprelu", d_sae=64, n_tokens=8 * 128,
                           batch_tokens=128, context_size=CONTEXT, eval_windows=2, checkpoint_every_tokens=100_000)
    started = start_training(studio, request, submit=False)

    def pause_once_training(event: dict) -> None:
        if event["stage"] == "train" and "tok/s" in (event["message"] or "") and not paused:
            paused.append(studio.runner.pause(started.job_id))
            time.sleep(0.3)  # past the job's 0.25 s poll interval: the next step's check sees the pause

    paused: list = []
    assert studio.runner.run_inline(started.job_id, listener=pause_once_training).status == "paused"
    with studio.sessions() as s:
        training = get_training(s, started.training_ids[0])
    assert training.status == "paused" and 0 < training.tokens_seen < 8 * 128  # the pause wrote a checkpoint

    again = start_training(studio, request, submit=False)
    assert again.resumed and again.job_id == started.job_id and again.tokens_done == training.tokens_seen
    job = studio.runner.run_inline(again.job_id)
    assert job.status == "completed" and job.result["resumed_from_tokens"] == training.tokens_seen
    with studio.sessions() as s:
        done = get_training(s, started.training_ids[0])
    assert done.status == "completed" and done.tokens_seen == 8 * 128 and done.sae_id == job.result["sae_ids"][0]
    assert done.metrics["l0"] > 0 and len(done.metrics["density_histogram"]["counts"]) == 40


def test_rest_start_and_curves(model_dir: Path, isolated_home: Path) -> None:
    from mistudio.api.app import create_app
    from mistudio.studio import Studio

    body = {"model": str(model_dir), "hook": HOOK0, "architecture": "batchtopk", "d_sae": 64, "k": 4,
            "n_tokens": 6 * 128, "batch_tokens": 128, "context_size": CONTEXT, "eval_windows": 2,
            "extra_saes": [{"hook": "blocks.1.hook_mlp_in", "hook_out": "blocks.1.hook_mlp_out", "architecture": "batchtopk",
                            "d_sae": 64, "k": 4}]}
    with TestClient(create_app(Studio.open(home=isolated_home))) as client:
        started = client.post("/api/v1/trainings/start", json=body)
        assert started.status_code == 202, started.text
        data = started.json()
        assert data["resumed"] is False and len(data["training_ids"]) == 2
        assert client.post("/api/v1/trainings/start", json=body).status_code == 409  # the same run is queued
        bad = client.post("/api/v1/trainings/start", json={**body, "hook": "blocks.0.hook_nope"})
        assert bad.status_code == 422 and "hook_nope" in bad.json()["error"]["message"]
        deadline = time.monotonic() + 120
        while (job := client.get(f"/api/v1/jobs/{data['job_id']}").json())["status"] not in (
                "completed", "failed", "cancelled") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job["status"] == "completed", job
        assert "tok/s" in job["message"] and "L0" in job["message"] and "EV" in job["message"]
        for training_id in data["training_ids"]:
            curves = client.get(f"/api/v1/trainings/{training_id}/curves").json()
            assert [s["step"] for s in curves["steps"]] == list(range(1, 7))
            assert curves["evals"] and curves["evals"][-1]["tokens"] == 6 * 128
            assert sum(curves["density_histogram"]["counts"]) == 64
            training = client.get(f"/api/v1/trainings/{training_id}").json()
            assert training["status"] == "completed" and training["sae_id"]
        transcoder = client.get(f"/api/v1/trainings/{data['training_ids'][1]}").json()
        assert transcoder["hook_name_out"] == "blocks.1.hook_mlp_out"
        sae = client.get(f"/api/v1/saes/{transcoder['sae_id']}").json()
        assert sae["source"] == "trained" and sae["architecture"] == "jumprelu"
        assert client.get("/api/v1/trainings/nope/curves").status_code == 404
