"""Checkpoint/resume, cancellation, cache reuse and out-of-memory back-off give the same arrays as one
uninterrupted run."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from mistudio.datasets.sources import load_texts
from mistudio.datasets.windows import tokenize_windows
from mistudio.errors import JobCancelled
from mistudio.extraction.engine import ExtractionSettings, run_extraction
from mistudio.lm.loading import load_model
from mistudio.saes.model import SAE, SAEConfig
from mistudio.store.feature_store import FeatureStore
from mistudio.testing.tiny_models import build_tiny_model, default_corpus

PARTS = ("statistics", "histograms", "top_examples", "interval_examples", "logit_lens", "summary")
SETTINGS = ExtractionSettings(top_k=4, batch_size=8, feature_chunk=16, checkpoint_every=2, interval_reservoir=10)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    loaded = load_model(str(build_tiny_model("pythia", root / "model")), device="cpu", dtype="float32")
    (root / "c.txt").write_text("\n\n".join(default_corpus(200, seed=9)))
    sae = SAE(SAEConfig(d_in=64, d_sae=40, hook_name="blocks.1.hook_resid_pre"))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(64, 40, generator=g) * 0.1)
        sae.W_dec.copy_(torch.randn(40, 64, generator=g))
        sae.b_enc.copy_(torch.randn(40, generator=g) * 0.2)
    windows = tokenize_windows(load_texts(root / "c.txt"), loaded.tokenizer, context_size=10, n_windows=96,
                               prepend_bos=True)
    reference = run_extraction(loaded, sae, windows, root / "reference", settings=SETTINGS)
    return root, loaded, sae, windows, reference


def _assert_same(a: FeatureStore, b: FeatureStore) -> None:
    for part in PARTS:
        ta, tb = load_file(a.path / f"{part}.safetensors"), load_file(b.path / f"{part}.safetensors")
        assert ta.keys() == tb.keys()
        for key in ta:
            assert torch.equal(ta[key], tb[key]), f"{part}/{key} differs"


def test_cancel_then_resume_is_identical(setup):
    root, loaded, sae, windows, reference = setup
    calls = {"n": 0}

    def cancel_after_five() -> None:
        calls["n"] += 1
        if calls["n"] > 5:
            raise JobCancelled("stop")

    with pytest.raises(JobCancelled):
        run_extraction(loaded, sae, windows, root / "resumed", settings=SETTINGS, check=cancel_after_five)
    partial = FeatureStore.open(root / "resumed")
    assert partial.manifest["status"] == "interrupted"
    state, done = partial.load_checkpoint()
    assert done == 5 * SETTINGS.batch_size
    seen = []
    store = run_extraction(loaded, sae, windows, root / "resumed", settings=SETTINGS,
                           progress=lambda p: seen.append(p["windows_done"]))
    assert seen[0] == done + SETTINGS.batch_size, "finished batches were redone"
    assert store.manifest["status"] == "completed" and store.load_checkpoint() is None
    _assert_same(reference, store)


def test_completed_store_is_reused(setup):
    root, loaded, sae, windows, reference = setup
    calls = []
    again = run_extraction(loaded, sae, windows, reference.path, settings=SETTINGS, progress=calls.append)
    assert calls == [] and again.manifest["status"] == "completed"


@pytest.mark.parametrize("failing_chunk_start", [0, 16])
def test_out_of_memory_halves_the_batch(setup, monkeypatch, failing_chunk_start):
    root, loaded, sae, windows, reference = setup
    original = SAE.encode_chunks
    state = {"raised": 0}

    def flaky(self, x, chunk_size=4096, start=0):
        for lo, acts in original(self, x, chunk_size, start):
            if x.shape[0] > 4 and lo == failing_chunk_start:  # fail on that feature chunk of every big batch
                state["raised"] += 1
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            yield lo, acts

    monkeypatch.setattr(SAE, "encode_chunks", flaky)
    store = run_extraction(loaded, sae, windows, root / f"oom-{failing_chunk_start}", settings=SETTINGS)
    assert state["raised"] >= 1
    assert store.manifest["n_tokens"] == reference.manifest["n_tokens"]
    for part in ("statistics", "histograms"):
        ta, tb = load_file(reference.path / f"{part}.safetensors"), load_file(store.path / f"{part}.safetensors")
        for key in ta:
            assert torch.allclose(ta[key].double(), tb[key].double(), rtol=1e-6, atol=1e-9), key
    tops_a = load_file(reference.path / "top_examples.safetensors")
    tops_b = load_file(store.path / "top_examples.safetensors")
    assert torch.allclose(tops_a["values"], tops_b["values"], atol=1e-6)


class _Killed(BaseException):
    """Stands for the process dying (not an Exception: nothing may catch it as an error)."""


@pytest.mark.parametrize("moment", ["before_rename", "after_rename"])
def test_killed_while_checkpointing_resumes_identically(setup, monkeypatch, moment):
    """Killed while the second checkpoint is written (its temp file complete on disk, not yet renamed) or right
    after its state landed, the resumed run equals an uninterrupted one: no window is counted twice, because
    the state and the count of windows it covers are one file swapped in by one rename."""
    import os

    root, loaded, sae, windows, reference = setup
    original = os.replace
    renames = {"state": 0}

    def dying_replace(src, dst, *args, **kwargs):
        if os.path.basename(dst) == "state.safetensors":
            renames["state"] += 1
            if renames["state"] == 2:
                if moment == "after_rename":
                    original(src, dst, *args, **kwargs)
                raise _Killed
        return original(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", dying_replace)
    target = root / f"killed-{moment}"
    with pytest.raises(_Killed):
        run_extraction(loaded, sae, windows, target, settings=SETTINGS)
    monkeypatch.undo()
    _, done = FeatureStore.open(target).load_checkpoint()
    per_checkpoint = SETTINGS.checkpoint_every * SETTINGS.batch_size
    assert done == (2 if moment == "after_rename" else 1) * per_checkpoint
    store = run_extraction(loaded, sae, windows, target, settings=SETTINGS)
    assert store.manifest["n_tokens"] == reference.manifest["n_tokens"]
    _assert_same(reference, store)
