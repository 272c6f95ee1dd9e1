"""`mistudio explain` and the REST routes over a real tiny extraction, against the local OpenAI-compatible server:
the prompts carry the feature's real top tokens and logits (read back from its dashboard), explanations are
stored with method/model/prompt version and become labels, reruns skip unless --force, a paused job resumes
without asking twice, --max-cost stops, one failing feature is reported while the others are done."""

from __future__ import annotations

import json
import re
import shutil
import threading
from typing import Any

import pytest
from fakes.fake_openai import FakeOpenAI, prompt_text
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mistudio.api.app import create_app
from mistudio.catalog.explanations import explanations_by_feature
from mistudio.catalog.service import register_sae_from_path
from mistudio.cli.main import app
from mistudio.dashboards.reader import feature_dashboard
from mistudio.db.models import FeatureSummary
from mistudio.demo import random_sae
from mistudio.extraction.service import get_store, start_extraction
from mistudio.saes.formats import write_saelens
from mistudio.studio import Studio
from mistudio.testing.tiny_models import build_tiny_model

D_SAE = 48
MAX_TOKENS_RE = re.compile(r"<MAX_ACTIVATING_TOKENS>\n\n(.*?)\n\n</MAX_ACTIVATING_TOKENS>", re.S)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A studio home with a tiny GPT-2 SAE and one completed extraction (copied for each test)."""
    root = tmp_path_factory.mktemp("explain")
    model = build_tiny_model("gpt2", root / "model")
    sae = random_sae(64, D_SAE, "blocks.1.hook_resid_pre", model_name=str(model), context_size=32,
                     sparsity_bias=0.2)
    with __import__("torch").no_grad():
        sae.b_enc[7] = -1e9  # never fires: dead
    home = root / "home"
    studio = Studio.open(home=home)
    sae_id = register_sae_from_path(studio, write_saelens(sae, root / "sae"), name="tiny", source="trained").id
    started = start_extraction(studio, sae_id, str(model), "builtin:corpus", submit=False, n_tokens=4096,
                               context_size=32, top_k=5, neuronpedia=False, batch_size=16)
    assert studio.runner.run_inline(started.job_id).status == "completed"
    with studio.sessions() as s:
        live = {i for i, dead in s.query(FeatureSummary.feature_index, FeatureSummary.dead) if not dead}
    assert 7 not in live and len(live) >= D_SAE - 4
    return home, sae_id, live


@pytest.fixture()
def studio_and_sae(template, isolated_home):
    home, sae_id, live = template
    shutil.copytree(home, isolated_home)
    return Studio.open(home=isolated_home), sae_id, live


def judge(body: dict[str, Any]) -> str:
    """Answers Neuronpedia's prompt as a model following it would: Method 1 with the first max-activating token."""
    last = body["messages"][-1]["content"]
    found = MAX_TOKENS_RE.search(last)
    first = found.group(1).split("\n")[0] if found else "?"
    return f"Method 1 succeeds: the max activating tokens share {first!r}.\nExplanation: token {first}"


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _logit_block(dashboard: dict[str, Any]) -> str:
    logits = [e["token"].replace("<|endoftext|>", " ").replace("\n", "").strip()
              for e in dashboard["logits"]["top_positive"][:10]]
    return "<TOP_POSITIVE_LOGITS>\n\n" + "\n".join(logits) + "\n\n</TOP_POSITIVE_LOGITS>"


def test_cli_explains_with_the_features_real_tokens_and_logits(studio_and_sae):
    studio, sae_id, live = studio_and_sae
    with FakeOpenAI(judge, api_key="sk-test") as fake:
        res = _cli("explain", sae_id, "--endpoint", fake.url, "--model", "judge-1", "--api-key", "sk-test",
                   "--features", "0-9", "--concurrency", "4", "--json")
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        requests = list(fake.requests)
    result = out["result"]
    expected = [i for i in range(10) if i in live]  # 0..9 inclusive; 7 is dead
    n = len(expected)
    assert out["estimate"]["n_features"] == n and result["n_selected"] == n and 7 not in expected
    assert result["n_explained"] == n and result["failures"] == [] and len(requests) == n
    assert result["prompt_tokens"] > 0 and result["requests"] == n and result["labels_set"] == n
    assert all(r["model"] == "judge-1" and r["max_tokens"] == 2000 for r in requests)

    _, store = get_store(studio, sae_id)
    with studio.sessions() as s:
        stored = explanations_by_feature(s, sae_id)
        labels = dict(s.query(FeatureSummary.feature_index, FeatureSummary.label)
                      .filter(FeatureSummary.sae_id == sae_id).all())
    assert sorted(stored) == expected
    for index, views in stored.items():
        dash = feature_dashboard(store, index)
        tops = [e for e in dash["activations"] if e["bin_min"] == -1]
        max_tokens = [e["tokens"][e["values"].index(max(e["values"]))] for e in tops]
        max_tokens = [t.replace("<|endoftext|>", " ").replace("\n", "").strip() for t in max_tokens]
        # exactly one request is this feature's: it holds its top logits and its texts' max tokens, best first
        mine = [r for r in requests if _logit_block(dash) in r["messages"][-1]["content"]]
        assert len(mine) == 1
        listed = MAX_TOKENS_RE.search(mine[0]["messages"][-1]["content"]).group(1).split("\n")
        assert listed == max_tokens[:len(listed)] and len(listed) == len(tops)
        (view,) = views
        assert view.description == f"token {max_tokens[0]}".strip()
        assert (view.method, view.model, view.source) == ("np_max-act-logits", "judge-1", "generated")
        assert view.prompt_version.startswith("np_max-act-logits/1")
        assert view.details["prompt_tokens"] > 0 and view.details["completion_tokens"] > 0
        assert labels[index] == view.description
    assert labels[7] is None

    # the job's params (listed by the API) never hold the key
    job = studio.runner.get(out["job_id"])
    assert "sk-test" not in json.dumps(job.params) and job.type == "explain"

    # a rerun skips what the method explained; --force redoes it; another method is separate
    with FakeOpenAI(judge) as fake:
        again = json.loads(_cli("explain", sae_id, "--endpoint", fake.url, "--model", "judge-1", "--features",
                                "0-9", "--json").stdout)
        assert again["estimate"]["n_features"] == 0 and again["estimate"]["n_already_explained"] == n
        assert again["result"]["n_explained"] == 0 and fake.n_requests == 0
        forced = json.loads(_cli("explain", sae_id, "--endpoint", fake.url, "--model", "judge-1", "--features",
                                 ",".join(map(str, expected[:2])), "--force", "--json").stdout)
        assert forced["result"]["n_explained"] == 2 and fake.n_requests == 2


def test_oai_method_prompt_and_answer_prefix(studio_and_sae):
    studio, sae_id, live = studio_and_sae
    _, store = get_store(studio, sae_id)
    feature = min(live)
    with FakeOpenAI(lambda body: " words at the start of a sentence.") as fake:
        res = _cli("explain", sae_id, "--endpoint", fake.url, "--model", "m", "--features", str(feature),
                   "--method", "oai_token-act-pair", "--json")
        assert res.exit_code == 0, res.output
        (request,) = fake.requests
    last = request["messages"][-1]["content"]
    assert request["messages"][0]["role"] == "system" and len(request["messages"]) == 8  # 3 few-shot pairs
    assert last.startswith("\n\nNeuron 4\nActivations:\n<start>\n")
    assert last.endswith("Explanation of neuron 4 behavior: the main thing this neuron does is find")
    dash = feature_dashboard(store, feature)
    top = [e for e in dash["activations"] if e["bin_min"] == -1][0]
    peak = max(top["values"])
    lines = [f"{t.replace('<|endoftext|>', ' ')}\t{min(10, int(10 * max(v, 0) / peak))}"
             for t, v in zip(top["tokens"], top["values"], strict=True)]
    assert "\n<start>\n" + "\n".join(lines) + "\n<end>\n" in last
    with studio.sessions() as s:
        (view,) = explanations_by_feature(s, sae_id)[feature]
    assert view.description == "words at the start of a sentence" and view.method == "oai_token-act-pair"


def test_rest_estimate_and_job(studio_and_sae):
    studio, sae_id, live = studio_and_sae
    with FakeOpenAI(judge, api_key="sk-rest") as fake, TestClient(create_app(studio, start_worker=False)) as client:
        body = {"endpoint": fake.url, "model": "judge-2", "api_key": "sk-rest", "features": "10-19",
                "price_per_1m_input": 2.0, "price_per_1m_output": 8.0, "concurrency": 5, "assumed_latency_s": 3}
        est = client.post(f"/api/v1/saes/{sae_id}/explain/estimate", json=body)
        assert est.status_code == 200, est.text
        estimate = est.json()
        expected = set(range(10, 20)) & live
        n = len(expected)
        assert estimate["n_features"] == estimate["n_requests"] == n and fake.n_requests == 0
        assert estimate["prompt_tokens"] > 500 * n and estimate["seconds"] == 3.0 * -(-n // 5)
        assert estimate["cost_usd"] == pytest.approx(
            estimate["prompt_tokens"] * 2e-6 + estimate["completion_tokens"] * 8e-6)
        started = client.post(f"/api/v1/saes/{sae_id}/explain", json=body)
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]
        assert started.json()["estimate"] == estimate
        state = studio.runner.run_inline(job_id)
        assert state.status == "completed", state.error_message
        assert state.result["n_explained"] == n and fake.n_requests == n
        measured = state.result["prompt_tokens"] * 2e-6 + state.result["completion_tokens"] * 8e-6
        assert state.result["cost_usd"] == pytest.approx(measured)
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        assert "sk-rest" not in json.dumps(job) and job["type"] == "explain"
        features = client.get(f"/api/v1/saes/{sae_id}/features", params={"labeled": True, "page_size": 100}).json()
        assert {it["feature_index"] for it in features["items"]} == expected
        # --unlabeled now leaves none of 10-19
        res = client.post(f"/api/v1/saes/{sae_id}/explain/estimate", json={**body, "labeled": False})
        assert res.status_code == 422 and "unlabelled" in res.json()["error"]["message"]
        bad = client.post(f"/api/v1/saes/{sae_id}/explain", json={**body, "endpoint": "localhost:1/v1"})
        assert bad.status_code == 422 and "http://" in bad.json()["error"]["message"]
        bad = client.post(f"/api/v1/saes/{sae_id}/explain", json={**body, "method": "nope"})
        assert bad.status_code == 422 and "np_max-act-logits" in bad.json()["error"]["message"]
        bad = client.post(f"/api/v1/saes/{sae_id}/explain/estimate", json={**body, "max_cost_usd": 1,
                                                                         "price_per_1m_input": None})
        assert bad.status_code == 422 and "--price-input" in bad.json()["error"]["message"]
        assert client.post("/api/v1/saes/nope/explain/estimate", json=body).status_code == 404
        methods = client.get("/api/v1/explain/methods").json()
        assert [m["method"] for m in methods] == ["np_max-act-logits", "oai_token-act-pair"]
        assert methods[0]["default"] and not methods[1]["default"] and methods[1]["prompt_version"]


def test_pause_then_resume_skips_done_features(studio_and_sae):
    from mistudio.autointerp.explain import start_explain
    from mistudio.autointerp.schemas import ExplainRequest

    studio, sae_id, live = studio_and_sae
    job: dict[str, str] = {}
    lock = threading.Lock()

    def pausing_judge(body: dict[str, Any]) -> str:
        with lock:
            if len(fake.requests) >= 3 and not job.get("paused"):
                job["paused"] = "yes"
                studio.runner.pause(job["id"])
        return judge(body)

    with FakeOpenAI(pausing_judge, delay_s=0.15) as fake:
        req = ExplainRequest(endpoint=fake.url, model="m", features="20-31", labeled=False, concurrency=2)
        job["id"] = start_explain(studio, sae_id, req, submit=False).job_id
        first = studio.runner.run_inline(job["id"])
        assert first.status == "paused"
        with studio.sessions() as s:
            done = set(explanations_by_feature(s, sae_id))
        n = len(set(range(20, 32)) & live)
        assert 3 <= len(done) < n and len(done) == fake.n_requests  # in-flight answers were kept
        studio.runner.resume(job["id"], enqueue=False)
        second = studio.runner.run_inline(job["id"])
        assert second.status == "completed", second.error_message
        assert fake.n_requests == n and second.result["n_explained"] == n
    with studio.sessions() as s:
        stored = explanations_by_feature(s, sae_id)
    assert sorted(stored) == sorted(set(range(20, 32)) & live) and all(len(v) == 1 for v in stored.values())


def test_max_cost_stops_the_run(studio_and_sae):
    studio, sae_id, live = studio_and_sae
    with FakeOpenAI(lambda body: "Explanation: cats") as fake:  # 2 completion word pieces per answer
        only = _cli("explain", sae_id, "--endpoint", fake.url, "--model", "m", "--features", "0-20",
                    "--price-input", "1", "--price-output", "2", "--estimate-only", "--json")
        estimate = json.loads(only.stdout)["estimate"]
        assert estimate["n_features"] == len(set(range(21)) & live) and fake.n_requests == 0
        assert estimate["cost_usd"] == pytest.approx((estimate["prompt_tokens"] + 2 * estimate["completion_tokens"])
                                                     / 1e6)
        res = _cli("explain", sae_id, "--endpoint", fake.url, "--model", "m", "--features", "0-20",
                   "--concurrency", "1", "--price-input", "0", "--price-output", "500000", "--max-cost", "3",
                   "--json")
        assert res.exit_code == 0, res.output
        result = json.loads(res.stdout)["result"]
    # $1 a request: the third reaches $3; the one sent while the third was being handled still counts
    assert result["stopped"] == "max_cost" and result["n_explained"] == 4 and fake.n_requests == 4
    assert result["cost_usd"] == pytest.approx(4.0)
    res = _cli("explain", sae_id, "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--max-cost", "1")
    assert res.exit_code == 1 and "--price-input" in res.output


def test_one_failing_feature_is_reported_and_the_others_done(studio_and_sae):
    studio, sae_id, live = studio_and_sae
    _, store = get_store(studio, sae_id)
    chosen = sorted(set(range(30, 36)) & live)
    bad = chosen[1]
    poisoned = _logit_block(feature_dashboard(store, bad))

    def responder(body: dict[str, Any]) -> Any:
        return (200, "<html>502 Bad Gateway</html>") if poisoned in prompt_text(body) else judge(body)

    with FakeOpenAI(responder) as fake:
        res = _cli("explain", sae_id, "--endpoint", fake.url, "--model", "m", "--features", "30-35")
        assert res.exit_code == 0, res.output
        assert f"failed feature {bad}" in res.output and fake.url in res.output and "estimate: " in res.output
        assert f"explained {len(chosen) - 1} feature" in res.output
    with studio.sessions() as s:
        assert sorted(explanations_by_feature(s, sae_id)) == [i for i in chosen if i != bad]


def test_unreachable_and_refused_endpoints_fail_clearly(studio_and_sae):
    studio, sae_id, live = studio_and_sae
    one = str(min(live))
    res = _cli("explain", sae_id, "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--features", one)
    assert res.exit_code == 1 and "http://127.0.0.1:9/v1" in res.output and "running" in res.output
    with FakeOpenAI(judge, api_key="sk-right") as fake:
        res = _cli("explain", sae_id, "--endpoint", fake.url, "--model", "m", "--features", one,
                   "--api-key", "sk-wrong")
        assert res.exit_code == 1 and "refused the API key" in res.output and fake.n_requests == 0
    with studio.sessions() as s:
        assert explanations_by_feature(s, sae_id) == {}


def test_prompts_and_parsing_equal_neuronpedias_own_code():
    """tests/golden/neuronpedia_explainer_prompts.json holds what Neuronpedia's fork of neuron-explainer
    (hijohnnylin/automated-interpretability at f345c05: `MaxActivationAndLogitsExplainer`,
    `TokenActivationPairExplainer`) built and parsed for these records, run with its own code."""
    from pathlib import Path

    from mistudio.autointerp.evidence import Example, FeatureEvidence
    from mistudio.autointerp.explainers import get_explainer

    golden = json.loads((Path(__file__).parent / "golden" / "neuronpedia_explainer_prompts.json").read_text())
    evidence = FeatureEvidence(
        feature_index=0, quantiles=[], top_logit_values=[], top_logits=golden["top_positive_logits"],
        top=[Example(tokens=r["tokens"], values=r["values"], window_index=i) for i, r in enumerate(golden["records"])])
    for method in ("np_max-act-logits", "oai_token-act-pair"):
        assert get_explainer(method).build_messages(evidence) == golden[method], method
    explainer = get_explainer("np_max-act-logits")
    for answer, theirs in golden["np_max-act-logits_parse"]:
        assert explainer.parse(answer, evidence) == theirs, answer


def test_killed_cli_job_resumes_by_feature(studio_and_sae):
    """`mistudio explain` killed mid-run (SIGKILL): its job reads `interrupted`; resuming it asks only for the
    features it had not stored, and every feature ends with exactly one explanation."""
    import subprocess
    import sys
    import time

    studio, sae_id, live = studio_and_sae
    chosen = sorted(set(range(24)) & live)
    with FakeOpenAI(judge, delay_s=0.2) as fake:
        proc = subprocess.Popen([sys.executable, "-m", "mistudio.cli.main", "explain", sae_id, "--endpoint", fake.url,
                                 "--model", "m", "--features", "0-23", "--concurrency", "2", "--json"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while fake.n_requests < 10 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        asked_before = fake.n_requests
        with studio.sessions() as s:
            saved = set(explanations_by_feature(s, sae_id))
        (job,) = studio.runner.list(job_type="explain")
        assert job.status == "interrupted" and 0 < len(saved) < len(chosen)
        studio.runner.resume(job.id, enqueue=False)
        final = studio.runner.run_inline(job.id)
        assert final.status == "completed", final.error_message
        assert fake.n_requests - asked_before == len(chosen) - len(saved)
    with studio.sessions() as s:
        stored = explanations_by_feature(s, sae_id)
    assert sorted(stored) == chosen and all(len(v) == 1 for v in stored.values())
    assert final.result["n_explained"] == len(chosen)
