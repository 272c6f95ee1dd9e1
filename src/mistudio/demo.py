"""The offline demo: a tiny random-weight GPT-2, an SAE trained on it by the studio's own trainer over the shipped
corpus (so it is catalogued as `trained`, with its training record and curves), and an extraction of its dashboards.

`random_sae` (random weights that fire sparsely) stays for tests and benchmarks that need an SAE without training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mistudio.errors import MiStudioError
from mistudio.saes.model import SAE, SAEConfig
from mistudio.studio import Studio

DEMO_HOOK = "blocks.1.hook_resid_pre"
DEMO_MODEL_FOLDER = "tiny-gpt2-demo"
DEMO_SAE_NAME = "demo: TopK SAE on a tiny GPT-2"
# The demo's defaults: a minute or so on a laptop CPU (tests pass a few thousand tokens instead).
DEMO_TRAIN_TOKENS = 500_000
DEMO_D_SAE = 1024
DEMO_K = 16
DEMO_CONTEXT = 64
# Tokens one pass over the shipped corpus gives at DEMO_CONTEXT (about 21k with the demo's tokenizer, less the
# held-out windows), so a run of n tokens makes n / DEMO_TOKENS_PER_EPOCH passes.
DEMO_TOKENS_PER_EPOCH = 16_000

RunJob = Callable[[Studio, str], Any]


def random_sae(d_in: int, d_sae: int, hook_name: str, *, model_name: str | None = None, seed: int = 0,
               context_size: int = 128, sparsity_bias: float = -0.35) -> SAE:
    """A standard SAE with random weights whose features fire sparsely on unit-scale residual activations."""
    g = torch.Generator().manual_seed(seed)
    sae = SAE(SAEConfig(d_in=d_in, d_sae=d_sae, hook_name=hook_name, model_name=model_name,
                        context_size=context_size, dataset_path="builtin:corpus"))
    with torch.no_grad():
        W_dec = torch.randn(d_sae, d_in, generator=g)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        sae.W_dec.copy_(W_dec)
        sae.W_enc.copy_(W_dec.T / d_in**0.5)
        sae.b_enc.copy_(sparsity_bias + 0.1 * torch.randn(d_sae, generator=g))
    return sae


def demo_model(studio: Studio) -> Path:
    """The demo's tiny GPT-2 (random weights, a tokenizer trained on the shipped corpus), built once per home."""
    from mistudio.datasets.sources import BUILTIN_CORPUS, load_texts
    from mistudio.testing.tiny_models import build_tiny_model

    model_dir = studio.settings.home / "models" / DEMO_MODEL_FOLDER
    if not (model_dir / "config.json").exists():
        texts = [t for _, t in load_texts(BUILTIN_CORPUS).iter_docs()]
        build_tiny_model("gpt2", model_dir, n_layers=2, d_model=128, vocab_size=2048, corpus_texts=texts)
    return model_dir


def _run(studio: Studio, job_id: str, run_job: RunJob | None) -> dict[str, Any]:
    """Run a created job to its end (through `run_job` when given) and return its result.

    Raises:
        MiStudioError: the job did not complete.
    """
    if run_job is not None:
        run_job(studio, job_id)
    else:
        studio.runner.run_inline(job_id)
    job = studio.runner.get(job_id)
    if job.status != "completed":
        raise MiStudioError(f"demo job {job_id} ({job.type}) {job.status}: {job.error_message or ''}".strip())
    return job.result or {}


def train_demo_sae(studio: Studio, model_dir: Path, *, n_tokens: int = DEMO_TRAIN_TOKENS, d_sae: int = DEMO_D_SAE,
                   k: int = DEMO_K, context_size: int = DEMO_CONTEXT, seed: int = 0,
                   run_job: RunJob | None = None) -> dict[str, Any]:
    """Train the demo's TopK SAE at `DEMO_HOOK` with the studio's trainer; return its `sae_id`, `training_id` and
    final `metrics`.

    Raises:
        MiStudioError: the training job did not complete.
    """
    from mistudio.datasets.sources import BUILTIN_CORPUS
    from mistudio.training.schemas import TrainRequest
    from mistudio.training.service import start_training

    request = TrainRequest(model=str(model_dir), dataset=BUILTIN_CORPUS, hook=DEMO_HOOK, architecture="topk",
                           d_sae=d_sae, k=k, n_tokens=n_tokens, context_size=context_size, seed=seed,
                           name=DEMO_SAE_NAME, epochs=max(1, -(-n_tokens // DEMO_TOKENS_PER_EPOCH)))
    started = start_training(studio, request, submit=False)
    result = _run(studio, started.job_id, run_job)
    metrics = result.get("metrics") or [{}]
    return {"sae_id": result["sae_ids"][0], "training_id": started.training_ids[0], "metrics": metrics[0]}


def run_demo(studio: Studio, *, n_tokens: int = 65_536, train_tokens: int = DEMO_TRAIN_TOKENS,
             d_sae: int = DEMO_D_SAE, k: int = DEMO_K, context_size: int = DEMO_CONTEXT,
             run_job: RunJob | None = None) -> dict[str, Any]:
    """Build the demo model, train its SAE, extract the SAE's dashboards over `n_tokens` of the shipped corpus;
    return the ids, the model folder and the training's final metrics.

    Raises:
        MiStudioError: the training or the extraction did not complete.
    """
    from mistudio.datasets.sources import BUILTIN_CORPUS
    from mistudio.extraction.service import start_extraction

    model_dir = demo_model(studio)
    trained = train_demo_sae(studio, model_dir, n_tokens=train_tokens, d_sae=d_sae, k=k, context_size=context_size,
                             run_job=run_job)
    started = start_extraction(studio, trained["sae_id"], str(model_dir), BUILTIN_CORPUS, submit=False,
                               n_tokens=n_tokens, context_size=context_size, top_k=20, batch_size=32)
    if not started.reused and started.job_id is not None:
        _run(studio, started.job_id, run_job)
    return {"sae_id": trained["sae_id"], "training_id": trained["training_id"],
            "extraction_id": started.extraction_id, "model": str(model_dir), "metrics": trained["metrics"]}

