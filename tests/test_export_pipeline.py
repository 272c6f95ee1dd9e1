"""The export pipeline end to end on real tiny data: archive layout, determinism, resume, SAELens round trip."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mistudio.export.builder import ExportHooks, ExportInputs, SAEInfo, build_export
from mistudio.export.config import make_config
from mistudio.export.source import InMemorySource
from mistudio.saes.model import SAE
from mistudio.testing.tiny_models import build_tokenizer
from sae_factories import make_sae

N_WINDOWS, CTX = 48, 16


def tiny_inputs(sae: SAE, seed: int = 0, n_windows: int = N_WINDOWS) -> ExportInputs:
    """A real in-memory source: the SAE encodes random inputs over a tiny tokenizer's tokens."""
    tok = build_tokenizer(vocab_size=300)
    vocab = [tok.decode([i]) for i in range(len(tok))]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_windows, CTX, sae.cfg.d_in, generator=gen)
    with torch.no_grad():
        acts = sae.encode(x).numpy()
    token_ids = torch.randint(0, len(vocab), (n_windows, CTX), generator=gen).numpy()
    w_u = torch.randn(sae.cfg.d_in, len(vocab), generator=gen)
    logit_weights = (sae.W_dec.detach() @ w_u).numpy()
    manifest = {"dataset": "tiny/dataset", "n_windows": n_windows, "context_size": CTX,
                "n_tokens": n_windows * CTX, "created_at": "2026-01-02T03:04:05+00:00"}
    source = InMemorySource.from_activations(acts, token_ids, vocab, logit_weights, manifest)
    explanations = {1: [{"description": "dates and times", "method": "manual", "model": None, "score": 0.5,
                         "created_at": "2026-01-01T00:00:00+00:00"}]}
    return ExportInputs(source=source, info=SAEInfo.from_sae(sae, "sae-1"), sae=sae, explanations=explanations,
                        labels={1: ("dates and times", "time")}, extraction_id="ext-1")


@pytest.fixture(scope="module")
def standard_sae() -> SAE:
    return make_sae("standard", d_in=16, d_sae=40, seed=3)


def run(inputs: ExportInputs, out: Path, **cfg) -> dict:
    config = make_config(**{"batch_size": 16, "model_id": "tiny-gpt2", **cfg})
    return build_export(inputs, config, out, out.with_suffix(".work"))


def test_archive_layout(standard_sae: SAE, tmp_path: Path) -> None:
    result = run(tiny_inputs(standard_sae), tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        names = set(zf.namelist())
        meta = json.loads(zf.read("metadata.json"))
        batch = json.loads(zf.read("neuronpedia/batch-0.json"))
        src = f"neuronpedia/exports/tiny-gpt2/{meta['neuronpedia']['source_id']}"
        rows = [json.loads(line) for line in gzip.decompress(zf.read(f"{src}/activations/batch-0.jsonl.gz")).splitlines()]
    assert {"metadata.json", "README.md", "SHA256SUMS", "explanations/explanations.json", "saelens/cfg.json",
            "saelens/sae_weights.safetensors", "saelens/sparsity.safetensors", "saelens/pretrained_saes.yaml",
            f"{src}/model.jsonl", f"{src}/source.jsonl", f"{src}/sourceset.jsonl", f"{src}/release.jsonl"} <= names
    assert sum(n.startswith("features/") for n in names) == 40 == result["feature_count"]
    assert meta["neuronpedia_id"] == "tiny-gpt2/1-mistudio-res-40"
    assert batch["layer"] == 1 and batch["sae_set"] == "mistudio-res-40" and batch["sae_id_suffix"] is None
    assert rows and all(len(r["id"]) == 25 and r["maxValue"] == max(r["values"]) for r in rows)
