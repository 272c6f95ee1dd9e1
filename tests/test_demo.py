"""The offline demo trains its SAE with the studio's own trainer: the SAE is catalogued as `trained`, linked to a
completed training record, reconstructs the demo model's activations far better than a random SAE of the same
width, and its dashboards are extracted."""

from __future__ import annotations

import pytest

from mistudio.catalog.service import get_record, get_training, sae_dir
from mistudio.dashboards.reader import feature_dashboard
from mistudio.datasets.sources import BUILTIN_CORPUS, load_texts
from mistudio.datasets.windows import tokenize_windows
from mistudio.demo import DEMO_HOOK, random_sae, run_demo
from mistudio.extraction.service import get_store
from mistudio.lm.loading import load_model
from mistudio.saes.formats import read_sae
from mistudio.training.evaluate import evaluate_sae

pytestmark = pytest.mark.timeout(240)

D_SAE = 256
K = 8
CONTEXT = 64
TRAIN_TOKENS = 12_288
EXTRACT_TOKENS = CONTEXT * 24


def test_demo_trains_registers_and_extracts_its_sae(studio) -> None:
    result = run_demo(studio, n_tokens=EXTRACT_TOKENS, train_tokens=TRAIN_TOKENS, d_sae=D_SAE, k=K,
                      context_size=CONTEXT)

    with studio.sessions() as s:
        record = get_record(s, result["sae_id"])
        training = get_training(s, result["training_id"])
        path = sae_dir(studio, record)
        source, training_id, architecture, d_sae = record.source, record.training_id, record.architecture, record.d_sae
    assert (source, training_id) == ("trained", result["training_id"])
    assert (architecture, d_sae) == ("topk", D_SAE)
    assert training.status == "completed"
    assert training.sae_id == result["sae_id"]
    assert training.dataset == BUILTIN_CORPUS and training.hook_name == DEMO_HOOK
    assert training.tokens_seen is not None and training.tokens_seen >= TRAIN_TOKENS
    assert training.hyperparameters["k"] == K
    assert training.wall_time_s is not None and training.wall_time_s > 0
    assert result["metrics"]["explained_variance"] == pytest.approx(training.metrics["explained_variance"])

    # The saved SAE (as the catalog holds it) against a random SAE of the same width, on the same windows.
    loaded = load_model(result["model"], device="cpu")
    windows = tokenize_windows(load_texts(BUILTIN_CORPUS), loaded.tokenizer, context_size=CONTEXT, n_windows=12,
                               seed=7)
    trained = evaluate_sae(loaded, read_sae(path), windows, hook=DEMO_HOOK, compute_ce=False)
    untrained = evaluate_sae(loaded, random_sae(loaded.d_model, D_SAE, DEMO_HOOK, context_size=CONTEXT), windows,
                             hook=DEMO_HOOK, compute_ce=False)
    assert trained.explained_variance is not None and untrained.explained_variance is not None
    assert trained.explained_variance > 0.3  # ~0.47 after one pass of the corpus; ~0.76 at the demo's default budget
    assert trained.explained_variance > untrained.explained_variance + 0.5  # the random SAE's is about -1.2
    assert trained.l0 == pytest.approx(K, abs=0.5)

    # Its dashboards: every live feature has top examples whose peak is the feature's maximum.
    _, store = get_store(studio, result["sae_id"], result["extraction_id"])
    arrays = store.summary_arrays()
    live = [i for i in range(store.n_features) if not arrays["dead"][i]]
    assert len(live) >= 32
    dashboard = feature_dashboard(store, live[0])
    assert dashboard["activations"]
    assert dashboard["activations"][0]["max_value"] == pytest.approx(dashboard["statistics"]["max_activation"])
