"""Live activations and the model server: the values equal the extraction's stored values for the same tokens
(a residual SAE, an `expected_average_only_in` SAE, an all-heads hook_z SAE with folded value biases), the LRU
unloads under a tiny budget, concurrent requests load a model once and run first come first served, bad input
gets a 4xx before any model work; REST and CLI."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import weakref

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mistudio.api.app import create_app
from mistudio.catalog.service import register_sae_from_path
from mistudio.datasets.windows import text_tokens
from mistudio.demo import random_sae
from mistudio.extraction.service import extract, get_store
from mistudio.inference.model_server import FifoLock, ModelServer, model_server
from mistudio.inference.sae_session import open_sae
from mistudio.lm.loading import load_model
from mistudio.saes.formats import write_saelens
from mistudio.studio import Studio
from mistudio.testing.tiny_models import build_tiny_model

D_SAE = 48
CONTEXT = 16
VALUE_BIAS = {"fold_ln": True, "center_writing_weights": True, "fold_value_biases": True}


def _sae(kind: str, model: str, seed: int = 0):  # noqa: ANN202
    if kind == "hook_z":
        sae = random_sae(64, D_SAE, "blocks.1.attn.hook_z", model_name=model, context_size=CONTEXT, seed=2,
                         sparsity_bias=0.0)
        sae.cfg.model_from_pretrained_kwargs = dict(VALUE_BIAS)
        return sae
    sae = random_sae(64, D_SAE, "blocks.1.hook_resid_pre", model_name=model, context_size=CONTEXT,
                     seed=seed + (1 if kind == "norm" else 0), sparsity_bias=0.0)
    if kind == "norm":
        sae.cfg.normalize_activations = "expected_average_only_in"
    return sae


@pytest.fixture(scope="module")
def live_studio(tmp_path_factory):
    """One studio with a tiny GPT-2 and three extracted SAEs (kinds → ids)."""
    root = tmp_path_factory.mktemp("live")
    model = str(build_tiny_model("gpt2", root / "model"))
    studio = Studio.open(home=root / "home")
    ids = {}
    for kind in ("resid", "norm", "hook_z"):
        path = write_saelens(_sae(kind, model), root / f"sae-{kind}")
        ids[kind] = register_sae_from_path(studio, path, name=f"tiny-{kind}", source="trained").id
        extract(studio, ids[kind], model, "builtin:corpus", n_tokens=CONTEXT * 24, context_size=CONTEXT, top_k=3,
                batch_size=8, interval_examples=0, neuronpedia=False)
    yield studio, model, ids
    model_server(studio).clear()


@pytest.mark.parametrize("kind", ["resid", "norm", "hook_z"])
def test_live_values_equal_the_stored_examples(live_studio, kind):
    studio, _, ids = live_studio
    sae_id = ids[kind]
    _, store = get_store(studio, sae_id)
    live = open_sae(studio, sae_id)
    if kind == "norm":  # the factor the extraction estimated is the one folded in
        assert store.manifest["normalization"]["source"] == "estimated"
        assert live.normalization["factor"] == store.manifest["normalization"]["factor"]
    if kind == "hook_z":
        assert live.hook == "blocks.1.attn.hook_z"
    top = store.read_part("top_examples")
    tokens = store.windows()["tokens"]
    active = np.flatnonzero(top["values"][:, 0].numpy() > 0)
    assert len(active) >= 5
    checked = 0
    for feature in active[:8].tolist():
        for slot in range(top["values"].shape[1]):
            window = int(top["windows"][feature, slot])
            if window < 0 or not top["values"][feature, slot] > 0:
                continue
            ids_ = tokens[window].tolist()
            result = live.activations_for_ids(ids_, features=[feature, int(active[0])], top_k=5)
            assert result.token_ids == ids_ and len(result.tokens) == CONTEXT
            np.testing.assert_allclose(result.features[0].values, top["rows"][feature, slot].numpy(),
                                       rtol=1e-5, atol=1e-6)
            assert result.features[0].max_token_index == int(top["positions"][feature, slot])
            # the per-token top list holds the feature wherever it ranks in the top 5
            at = result.features[0].max_token_index
            ranked = [fv.index for fv in result.top_features[at]]
            assert feature in ranked or len(ranked) == 5
            checked += 1
    assert checked >= 10


def test_text_is_tokenised_with_the_saes_bos_and_special_tokens_read_zero(live_studio):
    studio, _, ids = live_studio
    live = open_sae(studio, ids["resid"])
    loaded = load_model(live.model_ref, device="cpu", dtype="float32")
    text = "the cat sat on the mat"
    result = live.activations(text, top_k=4)
    assert result.token_ids == text_tokens(text, loaded.tokenizer, prepend_bos=True)
    assert result.token_ids[0] == loaded.tokenizer.bos_token_id and result.special[0]
    assert "".join(result.tokens[1:]) == text
    assert result.top_features[0] == []  # BOS is masked, as in the stored examples
    # the overall list is the features by their largest activation, brute force from the per-feature traces
    every = live.activations(text, features=list(range(D_SAE)), top_k=4)
    maxima = sorted(((max(t.values), t.index) for t in every.features), reverse=True)[:4]
    assert [(o.value, o.index) for o in result.overall] == [(v, i) for v, i in maxima if v > 0]
    for position, tops in enumerate(result.top_features):
        column = sorted(((t.values[position], t.index) for t in every.features), reverse=True)[:4]
        assert [(fv.value, fv.index) for fv in tops] == [(v, i) for v, i in column if v > 0]
    # encoded a few features at a time (the engine's feature chunks), the answer is the same
    chunked = dataclasses.replace(live, feature_chunk=7).activations(text, features=[1, 40], top_k=12)
    whole = live.activations(text, features=[1, 40], top_k=12)
    assert [[f.index for f in t] for t in chunked.top_features] == [[f.index for f in t] for t in whole.top_features]
    assert [o.index for o in chunked.overall] == [o.index for o in whole.overall]
    for a, b in zip(chunked.features, whole.features, strict=True):
        np.testing.assert_allclose(a.values, b.values, rtol=1e-6)


def test_open_sae_is_kept_and_needs_an_extraction_for_the_norm_factor(tmp_path, live_studio):
    studio, model, ids = live_studio
    assert open_sae(studio, ids["resid"]) is open_sae(studio, ids["resid"])
    path = write_saelens(_sae("norm", model, seed=10), tmp_path / "fresh")
    fresh = register_sae_from_path(studio, path, name="fresh-norm", source="trained").id
    from mistudio.errors import ConflictError

    with pytest.raises(ConflictError, match="mistudio extract"):
        open_sae(studio, fresh)


class _CountingLoader:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[str] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, ref, device=None, dtype=None):  # noqa: ANN001, ANN204
        with self.lock:
            self.calls.append(ref)
        time.sleep(self.delay)
        return load_model(ref, device=device, dtype=dtype)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return str(build_tiny_model("gpt2", root / "a")), str(build_tiny_model("llama", root / "b", seed=1))


def test_lru_unloads_the_least_recently_used_idle_model(two_models):
    a, b = two_models
    loader = _CountingLoader()
    one_model = sum(p.numel() * p.element_size() for p in load_model(a, device="cpu").model.parameters())
    server = ModelServer(int(one_model * 1.5), loader=loader, device="cpu")
    with server.lease(a) as first:
        assert first.name.endswith("/a")
        first_model = weakref.ref(first.model)
    del first
    with server.lease(a):
        pass
    assert len(loader.calls) == 1
    with server.lease(b):
        pass
    refs = [item.ref for item in server.loaded()]
    assert refs == [loader.calls[-1]] and refs[0].endswith("/b")  # a was unloaded to make room
    assert first_model() is None  # and its memory freed
    assert server.used_bytes <= server.budget_bytes
    with server.lease(a):  # reloads a, unloading the idle b
        assert [i.ref.rsplit("/", 1)[-1] for i in server.loaded()] == ["a"]
        with server.lease(b):  # both held at once: nothing held is ever unloaded
            assert {i.ref.rsplit("/", 1)[-1] for i in server.loaded()} == {"a", "b"}
        assert len(server.loaded()) == 2  # a is still held, so nothing can go yet
    # once a is released the budget holds again: b, now the least recently used, goes
    assert [i.ref.rsplit("/", 1)[-1] for i in server.loaded()] == ["a"]
    assert len(loader.calls) == 4
    listing = server.listing()
    assert listing.items[0].state == "ready" and listing.items[0].bytes == listing.used_bytes > 0


def test_concurrent_requests_load_once_and_run_in_arrival_order(two_models):
    a, _ = two_models
    loader = _CountingLoader(delay=0.3)
    server = ModelServer(None, loader=loader, device="cpu")
    seen, errors = [], []

    def request() -> None:
        try:
            with server.lease(a) as loaded:
                seen.append(loaded)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    assert [i.state for i in server.loaded()] == ["loading"] and server.loaded()[0].in_use == 4
    for t in threads:
        t.join(10)
    assert not errors and len(loader.calls) == 1 and len(seen) == 4 and all(s is seen[0] for s in seen)


def test_fifo_lock_grants_in_arrival_order_and_is_reentrant():
    lock = FifoLock()
    order: list[int] = []
    lock.acquire()
    lock.acquire()  # re-entrant
    lock.release()

    def worker(i: int) -> None:
        lock.acquire()
        order.append(i)
        lock.release()

    threads = []
    for i in range(5):
        t = threading.Thread(target=worker, args=(i,))
        t.start()
        deadline = time.monotonic() + 5
        while lock.waiting < i + 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        threads.append(t)
    lock.release()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_a_failed_load_reaches_every_waiter_and_the_next_request_retries(tmp_path):
    server = ModelServer(None, device="cpu")
    from mistudio.errors import NotFoundError

    with pytest.raises(NotFoundError), server.lease(str(tmp_path / "missing" / "model")):
        pass
    assert server.listing().items[0].state == "failed"
    with pytest.raises(NotFoundError), server.lease(str(tmp_path / "missing" / "model")):
        pass


def test_rest_activations_and_bad_input(live_studio):
    studio, _, ids = live_studio
    sae_id = ids["resid"]
    model_server(studio).clear()
    with TestClient(create_app(studio, start_worker=False)) as client:
        url = f"/api/v1/saes/{sae_id}/activations"
        for body, needle in [({"text": ""}, "text"), ({"text": "hi", "features": [D_SAE]}, "unknown feature"),
                             ({"text": "hi", "features": [-1]}, "unknown feature"),
                             ({"text": "hi", "top_k": 0}, "top_k"),
                             ({"text": "word " * (CONTEXT * 70)}, "characters")]:
            res = client.post(url, json=body)
            assert res.status_code == 422, (body, res.text)
            assert needle in res.json()["error"]["message"]
        held = client.get("/api/v1/models/loaded").json()["items"]
        assert [i["kind"] for i in held] == ["sae"]  # refused before loading the model
        assert client.post("/api/v1/saes/nope/activations", json={"text": "hi"}).status_code == 404
        too_long = client.post(url, json={"text": "the cat sat " * CONTEXT})
        assert too_long.status_code == 422 and "at most 16" in too_long.json()["error"]["message"]

        res = client.post(url, json={"text": "the cat sat on the mat", "features": [3, 1], "top_k": 3})
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["tokens"][0] == "<|endoftext|>" and len(body["token_ids"]) == len(body["tokens"])
        assert [f["index"] for f in body["features"]] == [3, 1]
        assert all(len(f["values"]) == len(body["tokens"]) for f in body["features"])
        assert len(body["top_features"]) == len(body["tokens"]) and len(body["overall"]) <= 3
        assert body == open_sae(studio, sae_id).activations("the cat sat on the mat", [3, 1], 3).model_dump(mode="json")
        loaded = client.get("/api/v1/models/loaded").json()
        models = [i for i in loaded["items"] if i["kind"] == "model"]
        assert [i["state"] for i in models] == ["ready"] and models[0]["bytes"] > 0
        assert loaded["used_bytes"] == sum(i["bytes"] for i in loaded["items"])


def test_cli_prints_a_table_and_json(live_studio, monkeypatch):
    from mistudio.cli.main import app
    from mistudio.settings import reset_settings

    studio, _, ids = live_studio
    monkeypatch.setenv("MISTUDIO_HOME", str(studio.settings.home))
    monkeypatch.setenv("MISTUDIO_DATABASE_URL", studio.settings.resolved_database_url)
    reset_settings()
    runner = CliRunner()
    res = runner.invoke(app, ["activations", ids["resid"], "the cat sat", "--feature", "2", "--top-k", "3",
                              "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["features"][0]["index"] == 2 and len(data["tokens"]) == len(data["top_features"])
    table = runner.invoke(app, ["activations", ids["resid"], "the cat sat", "--feature", "2"])
    assert table.exit_code == 0, table.output
    assert "feature 2" in table.output and "cat" in table.output
    bad = runner.invoke(app, ["activations", ids["resid"], "the cat", "--feature", str(D_SAE)])
    assert bad.exit_code == 1 and "unknown feature" in bad.output


@torch.no_grad()
def test_encode_equals_the_sae_on_prepared_inputs(live_studio):
    """`LiveSAE.encode` of raw captured hook_z activations = the SAE on the transformed, flattened input."""
    from mistudio.lm.hooks import capture_activations
    from mistudio.lm.processing import activation_transform_for

    studio, _, ids = live_studio
    live = open_sae(studio, ids["hook_z"])
    with live.lease() as loaded:
        tokens = torch.tensor([text_tokens("a small test", loaded.tokenizer)])
        raw = capture_activations(loaded, tokens, None, live.hook)
        expected = live.sae.encode(activation_transform_for(live.sae.cfg, live.hook, loaded)(raw).flatten(-2))
        torch.testing.assert_close(live.encode(raw, loaded), expected)
