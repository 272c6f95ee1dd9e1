"""The reader builds exactly the dashboards `dashboards.schemas` declares: every key a TypedDict requires, no key it
does not declare, values that validate unchanged (so the API serves what the reader built and the export reads
what mypy checked)."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
import torch
from pydantic import TypeAdapter
from typing_extensions import is_typeddict

from mistudio.dashboards.reader import feature_dashboard
from mistudio.dashboards.schemas import FeatureDashboard
from mistudio.datasets.sources import load_texts
from mistudio.datasets.windows import tokenize_windows
from mistudio.extraction.engine import ExtractionSettings, run_extraction
from mistudio.lm.loading import load_model
from mistudio.saes.model import SAE, SAEConfig
from mistudio.store.feature_store import FeatureStore
from mistudio.testing.tiny_models import build_tiny_model, default_corpus

D_SAE, DEAD = 24, 5


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    root = tmp_path_factory.mktemp("contract")
    loaded = load_model(str(build_tiny_model("gpt2", root / "model")), device="cpu", dtype="float32")
    (root / "corpus.txt").write_text("\n\n".join(default_corpus(120, seed=3)))
    sae = SAE(SAEConfig(d_in=64, d_sae=D_SAE, hook_name="blocks.0.hook_resid_post"))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(64, D_SAE, generator=g) * 0.1)
        sae.W_dec.copy_(torch.randn(D_SAE, 64, generator=g))
        sae.b_enc.copy_(torch.randn(D_SAE, generator=g) * 0.3 - 0.2)
        sae.b_enc[DEAD] = -1e9
    windows = tokenize_windows(load_texts(root / "corpus.txt"), loaded.tokenizer, context_size=12, n_windows=80,
                               prepend_bos=True, seed=5)
    return run_extraction(loaded, sae, windows, root / "store",
                          settings=ExtractionSettings(top_k=4, batch_size=16, logit_k=5))


def _shape_errors(value: Any, hint: Any, where: str) -> list[str]:
    """Keys missing from, or not declared by, every TypedDict met while walking `value` along `hint`."""
    origin = get_origin(hint)
    if is_typeddict(hint):
        hints = get_type_hints(hint)
        errors = [f"{where}: missing {k}" for k in sorted(hint.__required_keys__ - set(value))]
        errors += [f"{where}: undeclared {k}" for k in sorted(set(value) - set(hints))]
        for key, item in value.items():
            if key in hints:
                errors += _shape_errors(item, hints[key], f"{where}.{key}")
        return errors
    if origin is list:
        return [e for n, item in enumerate(value) for e in _shape_errors(item, get_args(hint)[0], f"{where}[{n}]")]
    if origin in (Union, types.UnionType):
        return min((_shape_errors(value, arm, where) for arm in get_args(hint)), key=len)
    return []


@pytest.mark.parametrize("options", [{}, {"n_examples": 2, "logit_k": 3, "n_bins": 7, "include_intervals": False}])
def test_reader_builds_the_declared_dashboard(store: FeatureStore, options: dict[str, Any]) -> None:
    adapter = TypeAdapter(FeatureDashboard)
    for index in range(D_SAE):
        dashboard = feature_dashboard(store, index, **options)
        assert _shape_errors(dashboard, FeatureDashboard, f"feature {index}") == []
        assert adapter.validate_python(dashboard) == dashboard
    assert feature_dashboard(store, DEAD)["statistics"]["dead"] is True
    assert any(ex["bin_min"] != -1 for i in range(D_SAE) for ex in feature_dashboard(store, i)["activations"])
