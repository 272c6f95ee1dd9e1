"""Data parallel training (`training.distributed`): two CPU processes on the gloo backend, each stepping an
`SAETrainer` on its shard of every global batch, end with the weights one process reaches on the whole batches."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from mistudio.lm.loading import load_model
from mistudio.testing.tiny_models import build_tiny_model
from mistudio.training.config import SAESpec, Schedule
from mistudio.training.distributed import DistributedContext, init_distributed
from mistudio.training.launch import follow, lead
from mistudio.training.run import RunConfig, run_training
from mistudio.training.trainer import SAETrainer

WORLD = 2
D_IN, D_SAE, BATCH, STEPS = 16, 48, 64, 6
ARCHITECTURES = ("standard", "topk", "jumprelu")


def _spec(architecture: str) -> SAESpec:
    return SAESpec(architecture=architecture, hook_name="blocks.0.hook_resid_post", d_in=D_IN, d_sae=D_SAE,
                   k=8 if architecture == "topk" else None, seed=3)


def _schedule() -> Schedule:
    return Schedule(lr=3e-3, total_steps=STEPS, batch_tokens=BATCH, warm_up_steps=2, decay_steps=2)


def _batches() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(11)
    atoms = torch.randn(32, D_IN, generator=gen)
    codes = torch.rand(STEPS, BATCH, 32, generator=gen) * (torch.rand(STEPS, BATCH, 32, generator=gen) < 0.1)
    return list(codes @ atoms)


def _train(architecture: str, dist: DistributedContext | None) -> dict[str, torch.Tensor]:
    trainer = SAETrainer(_spec(architecture), _schedule(), dist=dist)
    for batch in _batches():
        rows = dist.shard(batch.shape[0]) if dist is not None else range(batch.shape[0])
        trainer.step(batch[rows.start:rows.stop])
    return trainer.state_dict()


def _run_config(model: str) -> RunConfig:
    spec = SAESpec(architecture="topk", hook_name="blocks.0.hook_resid_post", d_in=32, d_sae=64, k=4, seed=1)
    return RunConfig(model=model, dataset="builtin:corpus", specs=[spec], n_tokens=4096, batch_tokens=1024,
                     context_size=32, eval_windows=2, norm_sample_windows=8, forward_batch_windows=8,
                     buffer_windows=64)


def _run_under_torchrun(dist: DistributedContext, model: str, out_dir: str) -> None:
    """Rank 0 leads as `mistudio train`'s job does, rank 1 follows; each saves its final SAE."""
    run_dir = Path(out_dir) / "run"
    if dist.is_main:
        cfg = _run_config(model)
        lead(dist, cfg, run_dir, dtype="float32")
        result = run_training(load_model(model, device="cpu", dtype="float32"), cfg, run_dir, dist=dist)
    else:
        result = follow(dist)
    save_file(result.saes[0].state_dict(), str(Path(out_dir) / f"run-rank{dist.rank}.safetensors"))


def _worker(rank: int, port: int, out_dir: str, model: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    dist = init_distributed(backend="gloo", timeout_s=120)
    assert dist is not None and dist.rank == rank and dist.world_size == WORLD and dist.is_main == (rank == 0)
    try:
        counts = torch.tensor([float(rank + 1), 1.0])
        assert dist.sum_(counts) is counts and counts.tolist() == [3.0, 2.0]
        assert dist.max_(torch.tensor([float(rank)])).item() == WORLD - 1
        assert dist.broadcast_(torch.tensor([float(rank + 5)])).item() == 5.0
        assert list(dist.shard(9)) == ([0, 1, 2, 3] if rank == 0 else [4, 5, 6, 7])
        for architecture in ARCHITECTURES:
            state = _train(architecture, dist)
            if dist.is_main:
                save_file(state, str(Path(out_dir) / f"{architecture}.safetensors"))
        _run_under_torchrun(dist, model, out_dir)
        dist.barrier()
    finally:
        dist.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_gloo_ranks_equal_one_process_on_the_combined_batches(tmp_path: Path) -> None:
    """Also: a whole run (`run_training`) with rank 0 leading and rank 1 following (`training.launch`) ends with
    the same SAE on both ranks, and only rank 0 writes the curves and checkpoint."""
    model = build_tiny_model("gpt2", tmp_path / "model", n_layers=1, d_model=32)
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path), str(model)), nprocs=WORLD, join=True,
                       start_method="spawn")
    rank0, rank1 = (load_file(str(tmp_path / f"run-rank{r}.safetensors")) for r in range(WORLD))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        torch.testing.assert_close(rank0[name], rank1[name], atol=0, rtol=0, msg=name)
    run_dir = tmp_path / "run"
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == _run_config(str(model)).total_steps()
    for architecture in ARCHITECTURES:
        parallel = load_file(str(tmp_path / f"{architecture}.safetensors"))
        single = _train(architecture, None)
        for name in ("module.W_enc", "module.W_dec", "module.b_enc", "module.b_dec"):
            torch.testing.assert_close(parallel[name], single[name], atol=1e-6, rtol=0,
                                       msg=f"{architecture} {name}")
        for name in ("trainer.firing_counts", "trainer.steps_since_fired", "trainer.density_rows",
                     "trainer.tokens_seen"):
            torch.testing.assert_close(parallel[name], single[name], msg=f"{architecture} {name}")
        assert not torch.equal(single["module.W_enc"], _fresh_encoder(architecture))  # it did train


def _fresh_encoder(architecture: str) -> torch.Tensor:
    return SAETrainer(_spec(architecture), _schedule()).state_dict()["module.W_enc"]


def test_not_under_torchrun_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed() is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_distributed() is None


def test_incomplete_torchrun_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from mistudio.errors import InvalidInputError

    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InvalidInputError, match="torchrun"):
        init_distributed()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InvalidInputError, match="not an integer"):
        init_distributed()
