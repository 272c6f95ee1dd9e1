"""The Steering page in Chromium against its own `mistudio serve` (a tiny Gemma-3-family model and a random SAE
catalogued in a fresh home) and a fake Neuronpedia steering server: open it from the SAE card and from a feature's
dashboard, pick a feature, run with the comparison on, hover a token's log-probability, sweep strengths, reopen a
stored run after a reload."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakes.fake_neuronpedia_steer import FakeNeuronpediaSteer

from e2e.conftest import _require_browser, error_recording_page, serve_studio

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
expect = pytest.importorskip("playwright.sync_api").expect

PROMPT = "the cat sat on the"
SOURCE = "tiny-gemma3/0-res-e2e"


@pytest.fixture(scope="module")
def steer_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A studio home with one catalogued SAE, our own DEFAULT completion of PROMPT, and `mistudio serve` on it."""
    _require_browser()
    import torch

    from mistudio.catalog.service import register_sae_from_path
    from mistudio.demo import random_sae
    from mistudio.saes.formats import write_saelens
    from mistudio.steering.schemas import SteerRequest
    from mistudio.steering.service import steer
    from mistudio.studio import Studio
    from mistudio.testing.tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("steer-e2e")
    model = build_tiny_model("gemma3", root / "model", d_model=64)
    sae = random_sae(64, 48, "blocks.0.hook_resid_post", model_name=str(model), context_size=32, seed=3)
    with torch.no_grad():
        sae.W_dec.mul_(8.0)
    home = root / "home"
    studio = Studio.open(home=home)
    sae_id = register_sae_from_path(studio, write_saelens(sae, root / "sae"), name="tiny-steer", source="trained").id
    ours = steer(studio, SteerRequest(sae_id=sae_id, prompt=PROMPT, features=[{"index": 3, "strength": 4.0}],
                                      n_completion_tokens=6, temperature=0, freq_penalty=0, seed=16),
                 store=False)
    studio.sessions.kw["bind"].dispose()
    with serve_studio(home) as url:
        yield {"url": url, "sae_id": sae_id, "ours": ours}


@pytest.fixture(scope="module")
def steer_page(browser, steer_server) -> Iterator[object]:
    pg = error_recording_page(browser, str(steer_server["url"]))
    yield pg
    pg.context.close()


def test_steering_page_end_to_end(steer_page, steer_server, shoot) -> None:
    page = steer_page
    sae_id = str(steer_server["sae_id"])
    ours = steer_server["ours"]
    assert ours.DEFAULT is not None
    same = {"STEERED": ours.STEERED.text if ours.STEERED else "", "DEFAULT": ours.DEFAULT.text}

    page.goto("/")
    card = page.get_by_test_id("sae-card").filter(has_text="tiny-steer")
    card.get_by_role("button", name="Steering").click()
    expect(page.get_by_test_id("steering-page")).to_be_visible()
    assert page.url.endswith(f"/saes/{sae_id}/steer")

    page.get_by_test_id("steer-feature-search").fill("3")
    page.get_by_role("button", name="Feature #3").click()
    page.get_by_label("Strength value of feature 3").fill("4")
    page.get_by_test_id("steer-prompt").fill(PROMPT)
    page.get_by_test_id("steer-temperature").fill("0")
    page.get_by_test_id("steer-n-tokens").fill("6")
    page.get_by_label("Freq. penalty").fill("0")
    with FakeNeuronpediaSteer(lambda _payload: same) as fake:
        page.get_by_test_id("steer-compare-toggle").check()
        page.get_by_test_id("steer-compare-host").fill(fake.url)
        page.get_by_test_id("steer-compare-key").fill(fake.api_key)
        page.get_by_label("Source").fill(SOURCE)
        page.get_by_test_id("steer-run-button").click()
        expect(page.get_by_test_id("steer-match")).to_contain_text("agree")
        assert fake.requests and fake.requests[0][1]["features"][0]["index"] == 3
    expect(page.get_by_test_id("steer-default")).to_contain_text(ours.DEFAULT.text.strip()[:3])
    expect(page.get_by_test_id("np-default")).to_be_visible()
    steered = page.get_by_test_id("steer-steered")
    steered.get_by_test_id("completion-token").first.hover()
    expect(steered.get_by_test_id("logprob-readout")).to_contain_text("logprob")
    shoot(page, "steer-01-compare")

    page.get_by_test_id("steer-compare-toggle").uncheck()
    page.get_by_test_id("steer-sweep-values").fill("0, 2")
    page.get_by_role("button", name="Run sweep").click()
    expect(page.get_by_test_id("steer-sweep-row")).to_have_count(2)
    shoot(page, "steer-02-sweep")

    page.reload()
    runs = page.get_by_test_id("steer-run")
    expect(runs).to_have_count(2)
    runs.nth(1).click()  # the first run (newest first)
    expect(page.get_by_test_id("steer-prompt")).to_have_value(PROMPT)
    expect(page.get_by_test_id("steer-steered")).to_be_visible()

    page.goto(f"/saes/{sae_id}/features/5")
    page.get_by_role("button", name="Steer with this feature").click()
    expect(page.get_by_test_id("steer-feature")).to_have_count(1)
    assert page.get_by_test_id("steer-feature").get_attribute("data-index") == "5"
    assert page.page_errors == []

