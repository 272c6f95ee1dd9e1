"""The offline demo: a tiny random-weight GPT-2, a random SAE on it, an extraction over the shipped corpus."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mistudio.saes.model import SAE, SAEConfig
from mistudio.studio import Studio

DEMO_HOOK = "blocks.1.hook_resid_pre"


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


def run_demo(studio: Studio, *, n_tokens: int = 65_536, d_sae: int = 1024, context_size: int = 64,
             run_job: Callable[[Studio, str], Any] | None = None) -> dict[str, Any]:
    """Build the demo model and SAE, catalogue the SAE and extract its dashboards; return ids and paths."""
    from mistudio.catalog.service import register_sae_from_path
    from mistudio.datasets.sources import BUILTIN_CORPUS, load_texts
    from mistudio.extraction.service import start_extraction
    from mistudio.saes.formats import write_saelens
    from mistudio.testing.tiny_models import build_tiny_model

    model_dir = studio.settings.home / "models" / "tiny-gpt2-demo"
    if not (model_dir / "config.json").exists():
        texts = [t for _, t in load_texts(BUILTIN_CORPUS).iter_docs()]
        build_tiny_model("gpt2", model_dir, n_layers=2, d_model=128, vocab_size=2048, corpus_texts=texts)
    sae = random_sae(128, d_sae, DEMO_HOOK, model_name=str(model_dir), context_size=context_size)
    with tempfile.TemporaryDirectory(dir=studio.settings.tmp_dir) as tmp:
        path = write_saelens(sae, Path(tmp) / "demo-sae")
        record = register_sae_from_path(studio, path, name="demo: random SAE on a tiny GPT-2", source="trained")
    started = start_extraction(studio, record.id, str(model_dir), BUILTIN_CORPUS, submit=False,
                               n_tokens=n_tokens, context_size=context_size, top_k=20, batch_size=32)
    if not started.reused and started.job_id is not None:
        if run_job is not None:
            run_job(studio, started.job_id)
        else:
            studio.runner.run_inline(started.job_id)
    return {"sae_id": record.id, "extraction_id": started.extraction_id, "model": str(model_dir)}
