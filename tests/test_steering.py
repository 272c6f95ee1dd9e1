"""Steering with Neuronpedia's semantics on tiny random models.

* Activation level: the hooked activation minus the unsteered one equals each method's formula, written here
  again with explicit matrices, at every position (special tokens untouched unless `steer_special_tokens`).
* Generation: our KV-cached generator against an independent loop written here (full recompute each step, its
  own hook, its own sampling rule) — the same tokens greedy and sampled; DEFAULT against HF `generate`.
* Service, REST and CLI: 4xx at once for bad input, runs stored and reopened, the sweep, and the comparison with a
  fake Neuronpedia steering server whose DEFAULT matches ours or not.
"""

from __future__ import annotations

import json

import pytest
import torch

from mistudio.errors import InvalidInputError
from mistudio.lm.hooks import capture_activations, resolve_hook
from mistudio.lm.loading import load_model
from mistudio.lm.processing import activation_transform_for
from mistudio.lm.tokens import special_token_ids
from mistudio.saes.model import SAEConfig
from mistudio.steering import generate as gen
from mistudio.steering.methods import STEER_METHODS, steering_terms
from mistudio.testing.tiny_models import build_tiny_model

D_MODEL = 64
D_SAE = 48
N_TOKENS = 8


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory):
    path = build_tiny_model("gemma3", tmp_path_factory.mktemp("gemma3") / "model", d_model=D_MODEL)
    return path, load_model(path, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    path = build_tiny_model("gpt2", tmp_path_factory.mktemp("gpt2") / "model", d_model=D_MODEL)
    return path, load_model(path, device="cpu", dtype="float32")


def _decoder(seed: int = 0, d_in: int = D_MODEL) -> torch.Tensor:
    return torch.randn(D_SAE, d_in, generator=torch.Generator().manual_seed(seed))


def _prompt_ids(loaded) -> torch.Tensor:
    tok = loaded.tokenizer
    ids = gen.prompt_token_ids(tok, "the cat sat <start_of_turn> on the mat", chat=False, prepend_bos=True)
    assert ids[0] == tok.bos_token_id
    return torch.tensor([ids])


def _expected(h: torch.Tensor, method: str, terms: list[tuple[torch.Tensor, float]]) -> torch.Tensor:
    """Each method's formula in float64 with explicit projection matrices."""
    x = h.double()
    d = x.shape[-1]
    if method == "SIMPLE_ADDITIVE":
        return x + sum(c * v.double() for v, c in terms)
    for v, c in terms:
        v = v.double()
        if method == "ORTHOGONAL_DECOMP":
            P = torch.outer(v, v) / (v @ v)
            x = x @ (torch.eye(d, dtype=torch.float64) - P).T + c * (x @ P.T)
        else:
            u = v / v.norm()
            p = x @ u
            capped = torch.where(p > c, torch.full_like(p, c), p)
            x = x + (capped - p).unsqueeze(-1) * u
    return x


@pytest.mark.parametrize("method", STEER_METHODS)
@pytest.mark.parametrize("hook_name", ["blocks.0.hook_resid_post", "blocks.1.hook_resid_pre"])
@pytest.mark.parametrize("steer_special", [False, True])
def test_hooked_activation_equals_the_formula(gemma3, method, hook_name, steer_special):
    _, loaded = gemma3
    W_dec = _decoder()
    features = [(3, 4.0), (17, -2.5)] if method == "SIMPLE_ADDITIVE" else [(3, 0.5), (17, 2.0)]
    terms = steering_terms(W_dec, features, strength_multiplier=1.5, normalize_steering=method != "SIMPLE_ADDITIVE")
    ids = _prompt_ids(loaded)
    point = resolve_hook(loaded, hook_name)
    plain = capture_activations(loaded, ids, None, hook_name)
    hook = gen.SteeringHook(loaded, point, terms, method, steer_special_tokens=steer_special)  # type: ignore[arg-type]
    hook.current_tokens = ids
    with hook.installed():
        steered = capture_activations(loaded, ids, None, hook_name)
    vectors = [(W_dec[i] / (W_dec[i].norm() if method != "SIMPLE_ADDITIVE" else 1.0), s * 1.5) for i, s in features]
    expected = _expected(plain[0], method, vectors)
    special = set(special_token_ids(loaded.tokenizer))
    skipped = [pos for pos, t in enumerate(ids[0].tolist()) if t in special and not steer_special]
    assert len(skipped) == (0 if steer_special else 2)  # BOS and <start_of_turn>
    for pos in range(ids.shape[1]):
        if pos in skipped:
            assert torch.equal(steered[0, pos], plain[0, pos])
        else:
            torch.testing.assert_close(steered[0, pos].double(), expected[pos], atol=1e-4, rtol=1e-5)
    assert not torch.allclose(steered, plain)


def test_normalize_steering_and_multiplier(gemma3):
    _, loaded = gemma3
    W_dec = _decoder(1) * 3.0
    raw = steering_terms(W_dec, [(5, 2.0)], strength_multiplier=4.0, normalize_steering=False)[0]
    unit = steering_terms(W_dec, [(5, 2.0)], strength_multiplier=4.0, normalize_steering=True)[0]
    assert raw.coeff == unit.coeff == 8.0
    torch.testing.assert_close(raw.vector, W_dec[5])
    torch.testing.assert_close(unit.vector.norm(), torch.tensor(1.0))
    with pytest.raises(InvalidInputError, match="feature 48 does not exist"):
        steering_terms(W_dec, [(48, 1.0)], strength_multiplier=1.0, normalize_steering=False)


def test_centring_transform_steers_in_the_sae_space(gpt2):
    """GPT-2 SAEs trained with center_writing_weights see x - mean(x): projections are taken there."""
    _, loaded = gpt2
    hook_name = "blocks.0.hook_resid_post"
    cfg = SAEConfig(d_in=D_MODEL, d_sae=D_SAE, hook_name=hook_name,
                    model_from_pretrained_kwargs={"center_writing_weights": True})
    transform = activation_transform_for(cfg, hook_name, loaded)
    W_dec = _decoder(2)
    terms = steering_terms(W_dec, [(7, 0.25)], strength_multiplier=1.0, normalize_steering=True)
    ids = torch.tensor([loaded.tokenizer("a small test of steering")["input_ids"]])
    plain = capture_activations(loaded, ids, None, hook_name)
    hook = gen.SteeringHook(loaded, resolve_hook(loaded, hook_name), terms, "ORTHOGONAL_DECOMP",
                            steer_special_tokens=True, transform=transform)
    hook.current_tokens = ids
    with hook.installed():
        steered = capture_activations(loaded, ids, None, hook_name)
    centred = plain[0] - plain[0].mean(-1, keepdim=True)
    want = plain[0].double() + _expected(centred, "ORTHOGONAL_DECOMP", [(W_dec[7] / W_dec[7].norm(), 0.25)]) \
        - centred.double()
    torch.testing.assert_close(steered[0].double(), want, atol=1e-4, rtol=1e-5)


def test_unsteerable_hooks_are_refused(gemma3):
    _, loaded = gemma3
    point = resolve_hook(loaded, "blocks.0.ln1.hook_normalized")
    with pytest.raises(InvalidInputError, match="not supported"):
        gen.SteeringHook(loaded, point, [], "SIMPLE_ADDITIVE", steer_special_tokens=True)


# ----- generation ---------------------------------------------------------------------------------------------


def _reference_generate(loaded, prompt_ids, *, hook_name, vectors, n_tokens, temperature=0.0, freq_penalty=0.0,
                        seed=0, steer_special=False):
    """Independent generator: full recompute every step, a forward hook adding Σ c·v at the non-special positions
    of the whole sequence, TransformerLens's sampling rule with its own seeded generator."""
    model = loaded.model
    special = set(special_token_ids(loaded.tokenizer))
    module = dict(model.named_modules())[{"blocks.0.hook_resid_post": "model.layers.0"}[hook_name]]
    seq = list(prompt_ids)
    rng = torch.Generator().manual_seed(seed)
    total = sum(c * v for v, c in vectors) if vectors else None

    def add(_m, _a, out):
        hidden = out[0] if isinstance(out, tuple) else out
        keep = torch.tensor([steer_special or t not in special for t in seq], dtype=hidden.dtype)
        hidden = hidden + keep[None, :, None] * total
        return (hidden, *out[1:]) if isinstance(out, tuple) else hidden

    handle = module.register_forward_hook(add) if total is not None else None
    try:
        with torch.no_grad():
            for _ in range(n_tokens):
                logits = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1].float()
                if temperature == 0:
                    nxt = int(torch.argmax(logits))
                else:
                    z = logits / temperature
                    if freq_penalty > 0:
                        counts = torch.zeros_like(z)
                        for t in seq:
                            counts[t] += 1
                        z = z - freq_penalty * counts
                    nxt = int(torch.multinomial(torch.softmax(z, -1), 1, generator=rng))
                seq.append(nxt)
                if nxt == loaded.tokenizer.eos_token_id:
                    break
    finally:
        if handle is not None:
            handle.remove()
    return seq[len(prompt_ids):]


def _steered(loaded, W_dec, features, *, steer_special=False):
    terms = steering_terms(W_dec, features, strength_multiplier=1.0, normalize_steering=False)
    point = resolve_hook(loaded, "blocks.0.hook_resid_post")
    return gen.SteeringHook(loaded, point, terms, "SIMPLE_ADDITIVE", steer_special_tokens=steer_special)


@pytest.mark.parametrize("steer_special", [False, True])
def test_greedy_generation_matches_an_independent_loop(gemma3, steer_special):
    _, loaded = gemma3
    W_dec = _decoder(3)
    features = [(2, 6.0), (9, -3.0)]
    prompt = _prompt_ids(loaded)[0].tolist()
    ours = gen.generate(loaded, prompt, n_tokens=N_TOKENS, temperature=0, freq_penalty=0, seed=0,
                        hook=_steered(loaded, W_dec, features, steer_special=steer_special))
    vectors = [(W_dec[i], s) for i, s in features]
    ref = _reference_generate(loaded, prompt, hook_name="blocks.0.hook_resid_post", vectors=vectors,
                              n_tokens=N_TOKENS, steer_special=steer_special)
    assert ours.token_ids == ref
    default = gen.generate(loaded, prompt, n_tokens=N_TOKENS, temperature=0, freq_penalty=0, seed=0)
    assert default.token_ids == _reference_generate(loaded, prompt, hook_name="blocks.0.hook_resid_post",
                                                    vectors=[], n_tokens=N_TOKENS)
    assert ours.token_ids != default.token_ids
    assert ours.text == loaded.tokenizer.decode(ours.token_ids)


def test_sampling_is_seeded_and_matches_an_independent_sampler(gemma3):
    _, loaded = gemma3
    W_dec = _decoder(4)
    prompt = _prompt_ids(loaded)[0].tolist()
    kwargs = {"n_tokens": N_TOKENS, "temperature": 1.3, "freq_penalty": 1.0}
    first = gen.generate(loaded, prompt, seed=7, hook=_steered(loaded, W_dec, [(1, 2.0)]), **kwargs)
    again = gen.generate(loaded, prompt, seed=7, hook=_steered(loaded, W_dec, [(1, 2.0)]), **kwargs)
    other = gen.generate(loaded, prompt, seed=8, hook=_steered(loaded, W_dec, [(1, 2.0)]), **kwargs)
    assert first.token_ids == again.token_ids and first.logprobs == again.logprobs
    assert first.token_ids != other.token_ids
    ref = _reference_generate(loaded, prompt, hook_name="blocks.0.hook_resid_post", vectors=[(W_dec[1], 2.0)],
                              seed=7, **kwargs)
    assert first.token_ids == ref


def test_logprobs_are_log_softmax_of_the_raw_logits(gemma3):
    _, loaded = gemma3
    prompt = _prompt_ids(loaded)[0].tolist()
    out = gen.generate(loaded, prompt, n_tokens=3, temperature=0, freq_penalty=0, seed=0, n_logprobs=4)
    seq = list(prompt)
    for entry in out.logprobs:
        with torch.no_grad():
            logits = loaded.model(input_ids=torch.tensor([seq])).logits[0, -1].float()
        ref = torch.log_softmax(logits, -1)
        assert entry.logprob == pytest.approx(float(ref[entry.token_id]), abs=1e-4)
        assert [c.token_id for c in entry.top_logprobs] == torch.topk(ref, 4).indices.tolist()
        assert entry.top_logprobs[0].token_id == entry.token_id  # greedy picks the top candidate
        seq.append(entry.token_id)


def test_chat_template_is_applied(gemma3):
    _, loaded = gemma3
    tok = loaded.tokenizer
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}"
                         "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
    try:
        ids = gen.prompt_token_ids(tok, "Hello there", chat=True, prepend_bos=True)
        expected = "<s><start_of_turn>user\nHello there<end_of_turn>\n<start_of_turn>model\n"
        assert ids == tok(expected, add_special_tokens=False)["input_ids"]
        assert ids.count(tok.convert_tokens_to_ids("<start_of_turn>")) == 2 and ids[0] == tok.bos_token_id
    finally:
        tok.chat_template = None
    fallback = gen.prompt_token_ids(tok, "Hello there", chat=True, prepend_bos=True)
    assert fallback[0] == tok.bos_token_id
    assert tok.decode(fallback[1:]) == gen.generic_chat_template("Hello there")
    with pytest.raises(InvalidInputError, match="empty"):
        gen.prompt_token_ids(tok, "   ", chat=False, prepend_bos=True)


def test_hook_z_with_a_head_index_steers_that_head_only(gemma3):
    _, loaded = gemma3
    hook_name = "blocks.0.attn.hook_z"
    d_head = loaded.d_head
    W_dec = torch.randn(D_SAE, d_head, generator=torch.Generator().manual_seed(5))
    terms = steering_terms(W_dec, [(0, 3.0)], strength_multiplier=1.0, normalize_steering=False)
    ids = _prompt_ids(loaded)
    plain = capture_activations(loaded, ids, None, hook_name)
    hook = gen.SteeringHook(loaded, resolve_hook(loaded, hook_name), terms, "SIMPLE_ADDITIVE",
                            steer_special_tokens=True, head_index=1)
    hook.current_tokens = ids
    with hook.installed():
        steered = capture_activations(loaded, ids, None, hook_name)
    delta = steered - plain
    torch.testing.assert_close(delta[0, :, 1], (3.0 * W_dec[0]).expand(ids.shape[1], -1), atol=1e-5, rtol=1e-5)
    assert torch.equal(delta[0, :, 0], torch.zeros_like(delta[0, :, 0]))


# ----- service, REST, CLI, runs, comparison -------------------------------------------------------------------

HOOK = "blocks.0.hook_resid_post"
NP_SOURCE = "tiny-gemma3/0-res-test"


@pytest.fixture(scope="module")
def sae_assets(gemma3, tmp_path_factory):
    from mistudio.demo import random_sae
    from mistudio.saes.formats import write_saelens

    path, _ = gemma3
    sae = random_sae(D_MODEL, D_SAE, HOOK, model_name=str(path), context_size=32, seed=3)
    with torch.no_grad():
        sae.W_dec.mul_(8.0)  # strong enough to change a tiny model's greedy completion
    folder = write_saelens(sae, tmp_path_factory.mktemp("sae") / "sae")
    return path, sae, folder


@pytest.fixture()
def steer_setup(sae_assets, studio):
    from fastapi.testclient import TestClient

    from mistudio.api.app import create_app
    from mistudio.catalog.service import register_sae_from_path

    path, sae, folder = sae_assets
    sae_id = register_sae_from_path(studio, folder, name="tiny-steer", source="trained").id
    with TestClient(create_app(studio, start_worker=False)) as client:
        yield client, studio, sae_id, sae, path


def _body(sae_id: str, **extra) -> dict:
    return {"sae_id": sae_id, "prompt": "the cat sat on the", "features": [{"index": 3, "strength": 4.0}],
            "n_completion_tokens": 6, "temperature": 0, "freq_penalty": 0, "seed": 1, **extra}


def test_api_steer_matches_the_reference_and_runs_are_stored(steer_setup):
    client, _, sae_id, sae, _ = steer_setup
    res = client.post("/api/v1/steer", json=_body(sae_id, steer_special_tokens=False))
    assert res.status_code == 200, res.text
    out = res.json()
    assert set(out) >= {"STEERED", "DEFAULT", "run_id", "prompt_token_ids"} and "comparison" not in out
    from mistudio.inference.model_server import model_server

    with model_server(steer_setup[1]).lease(str(steer_setup[4])) as loaded:
        prompt = out["prompt_token_ids"]
        assert prompt == gen.prompt_token_ids(loaded.tokenizer, "the cat sat on the", chat=False, prepend_bos=True)
        vectors = [(sae.W_dec[3].detach(), 4.0)]
        assert out["STEERED"]["token_ids"] == _reference_generate(loaded, prompt, hook_name=HOOK, vectors=vectors,
                                                                  n_tokens=6)
        assert out["DEFAULT"]["token_ids"] == _reference_generate(loaded, prompt, hook_name=HOOK, vectors=[],
                                                                  n_tokens=6)
    assert out["STEERED"]["token_ids"] != out["DEFAULT"]["token_ids"]
    first = out["STEERED"]["logprobs"][0]
    assert first["token_id"] == out["STEERED"]["token_ids"][0] and len(first["top_logprobs"]) == 5

    only = client.post("/api/v1/steer", json=_body(sae_id, types=["DEFAULT"])).json()
    assert "STEERED" not in only and only["DEFAULT"]["token_ids"] == out["DEFAULT"]["token_ids"]

    listing = client.get("/api/v1/steer/runs", params={"sae_id": sae_id}).json()
    assert listing["total"] == 2 and [r["id"] for r in listing["items"]] == [only["run_id"], out["run_id"]]
    assert listing["items"][1]["features"] == [{"index": 3, "strength": 4.0}]
    reopened = client.get(f"/api/v1/steer/runs/{out['run_id']}").json()
    assert reopened["kind"] == "steer" and reopened["result"]["STEERED"] == out["STEERED"]
    assert reopened["settings"]["steer_special_tokens"] is False and reopened["prompt"] == "the cat sat on the"


@pytest.mark.parametrize(("patch", "status", "needle"), [
    ({"prompt": ""}, 422, "prompt"),
    ({"prompt": "   "}, 422, "empty"),
    ({"features": [{"index": D_SAE, "strength": 1.0}]}, 422, f"feature {D_SAE} does not exist"),
    ({"features": []}, 422, "features"),
    ({"n_completion_tokens": 100_000}, 422, "n_completion_tokens"),
    ({"steer_method": "MAGIC"}, 422, "steer_method"),
    ({"temperature": -1}, 422, "temperature"),
    ({"sae_id": "no-such-sae"}, 404, "no-such-sae"),
])
def test_bad_input_is_refused_at_once(steer_setup, patch, status, needle):
    import time

    client, _, sae_id, _, _ = steer_setup
    started = time.monotonic()
    res = client.post("/api/v1/steer", json={**_body(sae_id), **patch})
    assert res.status_code == status, res.text
    assert needle in res.json()["error"]["message"]
    assert time.monotonic() - started < 2.0  # refused before any model is loaded
    assert client.get("/api/v1/steer/runs/nope").status_code == 404


def test_sweep_over_strength_multipliers(steer_setup):
    client, _, sae_id, _, _ = steer_setup
    res = client.post("/api/v1/steer/sweep", json=_body(sae_id, strength_multipliers=[0.0, 1.0, 3.0]))
    assert res.status_code == 200, res.text
    out = res.json()
    rows = out["rows"]
    assert [r["strength_multiplier"] for r in rows] == [0.0, 1.0, 3.0]
    assert rows[0]["STEERED"]["token_ids"] == out["DEFAULT"]["token_ids"]  # zero strength steers nothing
    single = client.post("/api/v1/steer", json=_body(sae_id, strength_multiplier=3.0)).json()
    assert rows[2]["STEERED"] == single["STEERED"]
    reopened = client.get(f"/api/v1/steer/runs/{out['run_id']}").json()
    assert reopened["kind"] == "sweep" and reopened["sweep"]["rows"] == rows
    compared = client.post("/api/v1/steer/sweep", json=_body(sae_id, strength_multipliers=[1.0],
                                                             compare_neuronpedia={"source": NP_SOURCE}))
    assert compared.status_code == 422 and "single runs" in compared.json()["error"]["message"]


def test_comparison_with_a_fake_neuronpedia(steer_setup):
    from fakes.fake_neuronpedia_steer import FakeNeuronpediaSteer

    client, _, sae_id, _, _ = steer_setup
    ours = client.post("/api/v1/steer", json=_body(sae_id)).json()
    same = {"STEERED": ours["STEERED"]["text"], "DEFAULT": ours["DEFAULT"]["text"]}
    with FakeNeuronpediaSteer(lambda _payload: same) as fake:
        compare = {"host": fake.url, "api_key": fake.api_key, "source": NP_SOURCE}
        out = client.post("/api/v1/steer", json=_body(sae_id, compare_neuronpedia=compare)).json()
        assert fake.requests[0][0] == "/api/steer"
        sent = fake.requests[0][1]
        assert sent["modelId"] == "tiny-gemma3" and sent["prompt"] == "the cat sat on the"
        assert sent["features"] == [{"modelId": "tiny-gemma3", "layer": "0-res-test", "index": 3, "strength": 4.0}]
        assert sent["n_tokens"] == 6 and sent["temperature"] == 0
        comparison = out["comparison"]
        assert comparison["DEFAULT"]["text"] == ours["DEFAULT"]["text"]  # the echoed prompt is stripped
        assert comparison["default_match"] is True and comparison["mismatch"] is False

        fake.respond = lambda _payload: {"STEERED": "x", "DEFAULT": " something else entirely"}
        out = client.post("/api/v1/steer", json=_body(sae_id, compare_neuronpedia=compare)).json()
        assert out["comparison"]["default_match"] is False and out["comparison"]["mismatch"] is True
        assert "differ" in out["comparison"]["message"]
        stored = client.get(f"/api/v1/steer/runs/{out['run_id']}").json()
        assert stored["result"]["comparison"]["mismatch"] is True
        assert "api_key" not in stored["settings"]["compare_neuronpedia"]

        bad = client.post("/api/v1/steer", json=_body(sae_id, compare_neuronpedia={**compare, "api_key": "wrong"}))
        assert bad.status_code == 200 and "401" in bad.json()["comparison"]["error"]
        assert bad.json()["DEFAULT"] == ours["DEFAULT"]

        fake.respond = lambda _payload: same
        chat = client.post("/api/v1/steer", json=_body(sae_id, chat=True, compare_neuronpedia=compare)).json()
        assert fake.requests[-1][0] == "/api/steer-chat"
        assert fake.requests[-1][1]["defaultChatMessages"] == [{"role": "user", "content": "the cat sat on the"}]
        assert chat["comparison"]["DEFAULT"]["text"] == ours["DEFAULT"]["text"].strip()
    no_source = client.post("/api/v1/steer", json=_body(sae_id, compare_neuronpedia={"host": "http://127.0.0.1:9"}))
    assert no_source.status_code == 422 and "Neuronpedia id" in no_source.json()["error"]["message"]


def test_cli_steer(steer_setup):
    from fakes.fake_neuronpedia_steer import FakeNeuronpediaSteer
    from typer.testing import CliRunner

    from mistudio.cli.main import app

    client, _, sae_id, _, _ = steer_setup
    ours = client.post("/api/v1/steer", json=_body(sae_id)).json()
    runner = CliRunner()
    args = ["steer", sae_id, "the cat sat on the", "--feature", "3:4", "--n-tokens", "6", "--temperature", "0",
            "--seed", "1", "--freq-penalty", "0"]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["STEERED"] == ours["STEERED"] and out["DEFAULT"] == ours["DEFAULT"]
    same = {"STEERED": ours["STEERED"]["text"], "DEFAULT": ours["DEFAULT"]["text"]}
    with FakeNeuronpediaSteer(lambda _payload: same) as fake:
        res = runner.invoke(app, [*args, "--compare-neuronpedia", "--neuronpedia-host", fake.url, "--api-key", fake.api_key,
                                  "--neuronpedia-source", NP_SOURCE])
    assert res.exit_code == 0, res.output
    assert "Neuronpedia" in res.output and "agree" in res.output
    bad = runner.invoke(app, ["steer", sae_id, "hi", "--feature", "3"])
    assert bad.exit_code == 1 and "INDEX:STRENGTH" in bad.output
    bad = runner.invoke(app, ["steer", sae_id, "hi", "--feature", "3:1", "--method", "NOPE"])
    assert bad.exit_code == 1 and "steer_method" in bad.output


def test_runs_table_on_each_database(any_db_studio):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from mistudio.db.models import Base, SAERecord
    from mistudio.steering.runs import get_run, list_runs, save_run
    from mistudio.steering.schemas import Completion, SteerRequest, SteerResult

    studio = any_db_studio
    with studio.sessions() as s, s.begin():
        s.add(SAERecord(id="sae-1", name="x", source="trained"))
    request = SteerRequest(sae_id="sae-1", prompt="hello", features=[{"index": 1, "strength": 2.0}])
    result = SteerResult(run_id="", prompt_token_ids=[1, 2], DEFAULT=Completion(text="a", token_ids=[5],
                                                                                  logprobs=[]))
    run_id = save_run(studio, request, "steer", result)
    assert result.run_id == run_id
    page = list_runs(studio, "sae-1")
    assert page.total == 1 and page.items[0].prompt == "hello"
    assert get_run(studio, run_id).result == result
    engine = studio.sessions.kw["bind"]
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diffs if "steering_runs" in repr(d)] == []


def test_neuronpedia_payload_and_source_ids():
    from mistudio.steering.compare import neuronpedia_payload, split_source
    from mistudio.steering.schemas import SteerRequest

    assert split_source("gemma-2-2b/20-gemmascope-res-16k") == ("gemma-2-2b", "20-gemmascope-res-16k")
    for bad in ("gemma-2-2b", "a/b/c", "/x"):
        with pytest.raises(InvalidInputError, match="model/source"):
            split_source(bad)
    request = SteerRequest(sae_id="s", prompt="Hi", features=[{"index": 4, "strength": -2.0}], chat=True,
                           steer_special_tokens=False, steer_method="ORTHOGONAL_DECOMP")
    path, body = neuronpedia_payload(request, "m/7-res")
    assert path == "/api/steer-chat" and body["steer_special_tokens"] is False
    assert body["steer_method"] == "ORTHOGONAL_DECOMP" and body["n_tokens"] == request.n_completion_tokens
    assert body["features"] == [{"modelId": "m", "layer": "7-res", "index": 4, "strength": -2.0}]
