"""The planted-concept test: a tiny GPT-2 and an SAE at `blocks.0.hook_resid_pre` (the token + position embedding)
whose feature 0 fires only on the token " be" and feature 1 only on " in" (an encoder row along the token's
embedding, a bias between the largest score of any other token and the smallest of the planted one at any
position: checked on live activations), a real extraction, explanations stored for them (true ones naming the
token, a wrong one naming " the"), and a fake judge that answers truthfully from the explanation and the examples
in the prompt. Detection and fuzzing give the true explanations a balanced accuracy ≥ 0.9 and the wrong one
chance; simulation (a fake returning log-probabilities) a high correlation and a low one. Errors: garbage answers
for one feature, a dropped connection for one feature, a 401 and an unreachable endpoint; resuming a job; the
CLI and REST once each."""

from __future__ import annotations

import json
import math
import re
import socket
import time

import numpy as np
import pytest
import torch
from fakes.fake_openai import DROP, Answer, FakeOpenAI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mistudio.api.app import create_app
from mistudio.autointerp.scorers.samples import ZeroWindows, activating_examples, non_activating_examples
from mistudio.autointerp.scoring import start_scoring
from mistudio.autointerp.scoring_schemas import ScoreRequest, ScoreResult
from mistudio.catalog.explanations import add_explanation, add_score, explanations_by_feature
from mistudio.catalog.service import register_sae_from_path
from mistudio.datasets.sources import BUILTIN_CORPUS, load_texts
from mistudio.extraction.service import extract, get_store
from mistudio.inference.model_server import model_server
from mistudio.inference.sae_session import open_sae
from mistudio.lm.loading import load_model
from mistudio.saes.formats import write_saelens
from mistudio.saes.model import SAE, SAEConfig
from mistudio.studio import Studio
from mistudio.testing.tiny_models import build_tiny_model

CONTEXT = 64
HOOK = "blocks.0.hook_resid_pre"
PLANTED = {0: " be", 1: " in"}
WRONG = " the"


def _explanation(token: str) -> str:
    return f'the token "{token}"'


def _planted_sae(loaded, model: str) -> SAE:  # noqa: ANN001
    """Features that fire on one token each: W_enc column = the token's unit embedding, b_enc = minus the midpoint
    between the best other (token, position) and the worst (planted token, position) projection."""
    wte = loaded.model.transformer.wte.weight.detach().float()
    wpe = loaded.model.transformer.wpe.weight.detach().float()[:CONTEXT]
    d_sae = 4
    sae = SAE(SAEConfig(d_in=wte.shape[1], d_sae=d_sae, hook_name=HOOK, model_name=model, context_size=CONTEXT,
                        dataset_path="builtin:corpus"))
    with torch.no_grad():
        sae.W_enc.zero_()
        sae.b_enc.fill_(-1e3)  # features 2, 3 never fire
        for f, token in PLANTED.items():
            t = loaded.tokenizer.convert_tokens_to_ids(token.replace(" ", "Ġ"))
            u = wte[t] / wte[t].norm()
            scores = (wte @ u)[:, None] + (wpe @ u)[None, :]  # [vocab, position]
            on = float(scores[t].min())
            scores[t] = -math.inf
            off = float(scores.max())
            assert on > off + 0.1, f"no threshold separates {token!r}: {on} vs {off}"
            sae.W_enc[:, f] = u
            sae.b_enc[f] = -(on + off) / 2
        sae.W_dec.copy_(sae.W_enc.T)
    return sae


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    texts = [t for _, t in load_texts(BUILTIN_CORPUS).iter_docs()]
    model = str(build_tiny_model("gpt2", root / "model", d_model=128, vocab_size=2048, corpus_texts=texts))
    loaded = load_model(model, device="cpu", dtype="float32")
    studio = Studio.open(home=root / "home")
    path = write_saelens(_planted_sae(loaded, model), root / "sae")
    sae_id = register_sae_from_path(studio, path, name="planted", source="trained").id
    extract(studio, sae_id, model, "builtin:corpus", n_tokens=CONTEXT * 160, context_size=CONTEXT, top_k=16,
            batch_size=16, neuronpedia=False)
    with studio.sessions() as s, s.begin():
        ids = {f: add_explanation(s, sae_id, f, _explanation(tok), method="np_max-act-logits", model="writer",
                                  source="generated") for f, tok in PLANTED.items()}
        ids["wrong"] = add_explanation(s, sae_id, 0, _explanation(WRONG), method="manual", source="typed")
    yield studio, sae_id, ids, loaded
    model_server(studio).clear()


# ----- a judge that tells the truth ---------------------------------------------------------------------------

_EXAMPLE = re.compile(r"^Example \d+: (.*)$", re.M)


def _token_of(prompt: str) -> str:
    return re.search(r'Latent explanation: the token "(.+?)"', prompt).group(1)


def _has(text: str, token: str) -> bool:
    return re.search(re.escape(token) + r"(?![A-Za-z])", text) is not None


def truthful_judge(body):  # noqa: ANN001, ANN201
    """Detection: 1 when the example holds the explanation's token. Fuzzing: 1 when every marked span is made of
    that token. Simulation: 10 at each line of that token, else 0, with log-probabilities."""
    last = body["messages"][-1]["content"]
    if "Latent explanation:" in last:
        token = _token_of(last)
        fuzzing = "between tokens << and >>" in body["messages"][0]["content"]
        answers = []
        for text in _EXAMPLE.findall(last):
            spans = re.findall(r"<<(.*?)>>", text)
            if fuzzing:
                ok = bool(spans) and all(re.fullmatch(f"(?:{re.escape(token)})+", s) for s in spans)
            else:
                ok = _has(text, token)
            answers.append("1" if ok else "0")
        return "[" + ",".join(answers) + "]"
    token = re.search(r"behavior: the main thing this neuron does is find the token \"(.+?)\"", last).group(1)
    entries = []
    for line in re.findall(r"^(.*)\tunknown$", last, re.M):
        value = "10" if line == token else "0"
        entries += [{"token": line, "logprob": 0.0, "top_logprobs": [{"token": line, "logprob": 0.0}]},
                    {"token": "\t", "logprob": 0.0, "top_logprobs": [{"token": "\t", "logprob": 0.0}]},
                    {"token": value, "logprob": math.log(0.8), "top_logprobs": [
                        {"token": value, "logprob": math.log(0.8)}, {"token": "3", "logprob": math.log(0.2)}]},
                    {"token": "\n", "logprob": 0.0, "top_logprobs": [{"token": "\n", "logprob": 0.0}]}]
    return Answer("".join(e["token"] for e in entries), logprobs=entries)


def _run(studio, sae_id, **fields):  # noqa: ANN001, ANN003, ANN202
    started = start_scoring(studio, sae_id, ScoreRequest(**fields))
    state = studio.runner.run_inline(started.job_id)
    return started, state


def _scores(studio, sae_id, scorer):  # noqa: ANN001, ANN202
    with studio.sessions() as s:
        views = explanations_by_feature(s, sae_id)
    return {v.id: [sc for sc in v.scores if sc.scorer == scorer][-1] for vs in views.values() for v in vs
            if any(sc.scorer == scorer for sc in v.scores)}


# ----- the tests ----------------------------------------------------------------------------------------------


def test_planted_features_fire_only_on_their_token(planted):
    studio, sae_id, _, loaded = planted
    live = open_sae(studio, sae_id)
    _, store = get_store(studio, sae_id)
    windows = store.windows()["tokens"]
    targets = {f: loaded.tokenizer.convert_tokens_to_ids(t.replace(" ", "Ġ")) for f, t in PLANTED.items()}
    fired = {f: 0 for f in PLANTED}
    for w in range(0, 16):
        ids = windows[w].tolist()
        result = live.activations_for_ids(ids, features=list(PLANTED))
        for trace in result.features:
            on = np.asarray(trace.values) > 0
            expected = (np.asarray(ids) == targets[trace.index]) & ~np.asarray(result.special)
            assert (on == expected).all(), (w, trace.index)
            fired[trace.index] += int(on.sum())
    assert all(n >= 5 for n in fired.values())


def test_held_out_examples_span_the_bands_and_negatives_are_verified_zero(planted):
    studio, sae_id, _, _ = planted
    _, store = get_store(studio, sae_id)
    live = open_sae(studio, sae_id)
    top_windows = [int(w) for w in store.row("top_examples", "windows", 0).tolist()[:10]]
    act, reused = activating_examples(store, 0, 15, seen_windows=top_windows, seed=1)
    assert len(act) == 15 and reused == 0 and not {e.window_index for e in act} & set(top_windows)
    assert len({e.quantile for e in act}) >= 3  # drawn across the bands
    more, reused = activating_examples(store, 0, 40, seen_windows=top_windows, seed=1)
    assert reused > 0 and more[:len(more) - reused] and len({e.window_index for e in more}) == len(more)
    assert all(len(e.tokens) == 32 and e.max_value > 0 and " be" in e.tokens for e in act)
    assert act == activating_examples(store, 0, 15, seen_windows=top_windows, seed=1)[0]  # seeded
    zero = ZeroWindows(live, store, [0, 1])
    non = non_activating_examples(store, 0, 25, zero)
    assert len(non) == 25 and len({e.window_index for e in non}) == 25
    for example in non[:8]:  # checked again on the live SAE, a window at a time
        values = live.activations_for_ids(store.windows()["tokens"][example.window_index].tolist(),
                                          features=[0]).features[0].values
        assert max(values) == 0.0 and " be" not in example.tokens


def _chance_tolerance(details: dict) -> float:
    """3 standard deviations of (TPR + TNR) / 2 around 0.5 for a judge whose answers do not depend on the
    feature: TPR − (1 − TNR) is a difference of two binomial proportions with the pooled rate p."""
    n1, n2 = details["n_activating"], details["n_non_activating"]
    p = (details["tp"] + details["fp"]) / (n1 + n2)
    return max(0.05, 3 * 0.5 * math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2)))


@pytest.mark.parametrize("scorer", ["detection", "fuzzing"])
def test_true_explanations_score_high_and_a_wrong_one_chance(planted, scorer):
    studio, sae_id, ids, _ = planted
    with FakeOpenAI(truthful_judge) as fake:
        started, state = _run(studio, sae_id, endpoint=fake.url, model="judge", scorer=scorer,
                              all_explanations=True, concurrency=4)
        requests = list(fake.requests)
    assert state.status == "completed", state.error_message
    assert started.n_explanations == 3
    result = ScoreResult.model_validate(state.result)
    assert result.n_scored == 3 and result.failures == []
    # 25 activating + 25 non-activating examples per explanation, 5 per prompt
    assert len(requests) == 3 * 10 and result.requests == 30
    assert all(len(_EXAMPLE.findall(r["messages"][-1]["content"])) == 5 for r in requests)
    scores = _scores(studio, sae_id, scorer)
    for f in PLANTED:
        good = scores[ids[f]]
        assert good.score >= 0.9, (f, good)
        assert good.n_examples == 50 and good.model == "judge" and {"tpr", "tnr"} <= set(good.details)
    wrong = scores[ids["wrong"]]
    assert abs(wrong.score - 0.5) <= _chance_tolerance(wrong.details), wrong
    assert 0.0 <= wrong.score <= 1.0


def test_simulation_correlates_for_the_true_explanation(planted):
    studio, sae_id, ids, _ = planted
    with FakeOpenAI(truthful_judge) as fake:
        _, state = _run(studio, sae_id, endpoint=fake.url, model="sim", scorer="simulation", all_explanations=True,
                        features="0", n_activating=6, n_non_activating=6)
        assert all(r["logprobs"] is True and r["top_logprobs"] == 15 for r in fake.requests)
    assert state.status == "completed", state.error_message
    scores = _scores(studio, sae_id, "simulation")
    assert scores[ids[0]].score > 0.8 and scores[ids[0]].n_examples == 12
    assert scores[ids["wrong"]].score < 0.3


def test_failures_are_reported_per_feature_and_the_others_done(planted):
    studio, sae_id, ids, _ = planted

    def flaky(body):  # noqa: ANN001, ANN202
        last = body["messages"][-1]["content"]
        if _token_of(last) == " in":
            return "I would rather not say."
        return truthful_judge(body)

    with FakeOpenAI(flaky) as fake:
        _, state = _run(studio, sae_id, endpoint=fake.url, model="flaky", scorer="detection")
    result = ScoreResult.model_validate(state.result)
    assert state.status == "completed" and result.n_scored == 1 and result.n_failed == 1
    failure = result.failures[0]
    assert failure.feature_index == 1 and failure.error_type == "EndpointResponseError"
    assert "feature 1" in failure.error and "[1,0,0,1,0]" in failure.error
    assert _scores(studio, sae_id, "detection")[ids[0]].model == "flaky"

    def dropping(body):  # noqa: ANN001, ANN202
        return DROP if _token_of(body["messages"][-1]["content"]) == " be" else truthful_judge(body)

    with FakeOpenAI(dropping) as fake:
        _, state = _run(studio, sae_id, endpoint=fake.url, model="dropping", scorer="detection", max_retries=0)
    result = ScoreResult.model_validate(state.result)
    assert [(f.feature_index, f.error_type) for f in result.failures] == [(0, "EndpointUnreachableError")]
    assert [s.feature_index for s in result.scores] == [1]

    with FakeOpenAI(lambda body: "no idea") as fake:
        _, state = _run(studio, sae_id, endpoint=fake.url, model="garbage", scorer="fuzzing")
    assert state.status == "failed" and "every one of the 2 explanation(s) failed" in state.error_message
    with FakeOpenAI(lambda body: DROP) as fake:  # the server answers /models, then drops every chat request
        _, state = _run(studio, sae_id, endpoint=fake.url, model="gone", scorer="detection", max_retries=0,
                        concurrency=1, all_explanations=True)
    assert state.status == "failed" and "stopped: 3 explanations in a row" in state.error_message


def test_bad_key_and_unreachable_endpoint_fail_with_clear_messages(planted):
    studio, sae_id, _, _ = planted
    with FakeOpenAI(truthful_judge, api_key="sk-right") as fake:
        _, state = _run(studio, sae_id, endpoint=fake.url, model="keyed", scorer="detection", api_key="sk-wrong")
        assert state.status == "failed" and "refused the API key" in state.error_message
        assert "--api-key" in state.error_message and not fake.requests  # refused before any chat request
        _, state = _run(studio, sae_id, endpoint=fake.url, model="keyed", scorer="detection", api_key="sk-right")
        assert state.status == "completed"  # the key reached the job as a secret
        assert all(h.get("Authorization") == "Bearer sk-right" for h in fake.headers[-20:])
    with studio.sessions() as s:
        assert "sk-right" not in json.dumps([v.model_dump() for vs in explanations_by_feature(s, sae_id).values()
                                             for v in vs])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    _, state = _run(studio, sae_id, endpoint=f"http://127.0.0.1:{port}/v1", model="m", scorer="detection",
                    max_retries=0, force=True)
    assert state.status == "failed" and "check that the server is running" in state.error_message


def test_a_resumed_job_skips_what_it_scored_and_a_rerun_skips_what_is_scored(planted):
    studio, sae_id, ids, _ = planted
    with FakeOpenAI(truthful_judge) as fake:
        started = start_scoring(studio, sae_id, ScoreRequest(endpoint=fake.url, model="resume", scorer="detection"))
        with studio.sessions() as s, s.begin():  # as if the job had scored feature 0 before it was interrupted
            add_score(s, ids[0], "detection", 0.75, model="resume", n_examples=50, job_id=started.job_id)
        state = studio.runner.run_inline(started.job_id)
        assert state.status == "completed"
        prompts = [r["messages"][-1]["content"] for r in fake.requests]
        assert prompts and all(_token_of(p) == " in" for p in prompts)
        result = ScoreResult.model_validate(state.result)
        assert sorted(s.feature_index for s in result.scores) == [0, 1] and result.scores[0].score == 0.75
        with pytest.raises(Exception, match="already"):
            start_scoring(studio, sae_id, ScoreRequest(endpoint=fake.url, model="resume", scorer="detection"))


def test_score_from_the_cli_and_rest(planted, monkeypatch):
    from mistudio.cli.main import app

    studio, sae_id, ids, _ = planted
    monkeypatch.setenv("MISTUDIO_HOME", str(studio.settings.home))
    with FakeOpenAI(truthful_judge) as fake:
        res = CliRunner().invoke(app, ["score", sae_id, "--endpoint", fake.url, "--model", "cli", "--scorer",
                                       "fuzzing", "--features", "1", "--json"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert [(s["feature_index"], s["score"] >= 0.9) for s in out["result"]["scores"]] == [(1, True)]
        bad = CliRunner().invoke(app, ["score", sae_id, "--endpoint", fake.url, "--model", "cli", "--features",
                                       "7-99"])
        assert bad.exit_code == 1 and "outside" in bad.output
        unknown = CliRunner().invoke(app, ["score", sae_id, "--endpoint", fake.url, "--model", "cli", "--scorer",
                                           "intruder"])
        assert unknown.exit_code == 1 and "--scorer" in unknown.output and "detection" in unknown.output
        with TestClient(create_app(studio)) as client:
            started = client.post(f"/api/v1/saes/{sae_id}/score", json={
                "endpoint": fake.url, "model": "rest", "scorer": "detection", "features": "0"})
            assert started.status_code == 202, started.text
            body = started.json()
            assert body["n_explanations"] == 1
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status = client.get(f"/api/v1/saes/{sae_id}/score/{body['job_id']}").json()
                if status["job"]["status"] in ("completed", "failed"):
                    break
                time.sleep(0.1)
            assert status["job"]["status"] == "completed", status
            assert status["result"]["scores"][0]["explanation_id"] == ids[0]
            assert status["result"]["scores"][0]["score"] >= 0.9
            refused = client.post(f"/api/v1/saes/{sae_id}/score", json={
                "endpoint": "ftp://nowhere", "model": "rest", "scorer": "detection"})
            assert refused.status_code == 422
