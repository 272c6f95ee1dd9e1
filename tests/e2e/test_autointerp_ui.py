"""Auto-interp in Chromium against its own `mistudio serve` (a tiny GPT-2 and an extracted random SAE) and a local
OpenAI-compatible fake model: Explain on a feature's dashboard produces an explanation shown there; the feature
browser's "Unexplained" filter and the header's explanation search work."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakes.fake_openai import FakeOpenAI

from e2e.conftest import _require_browser, error_recording_page, serve_studio

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
expect = pytest.importorskip("playwright.sync_api").expect

ANSWER = "Explanation: kittens and cats"


@pytest.fixture(scope="module")
def ai_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A home with one extracted SAE and one imported explanation, `mistudio serve` on it, and the fake model."""
    _require_browser()
    from mistudio.catalog.explanations import add_explanation
    from mistudio.catalog.service import register_sae_from_path
    from mistudio.db.models import FeatureSummary
    from mistudio.demo import random_sae
    from mistudio.extraction.service import extract
    from mistudio.saes.formats import write_saelens
    from mistudio.studio import Studio
    from mistudio.testing.tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("autointerp-e2e")
    model = build_tiny_model("gpt2", root / "model")
    sae = random_sae(64, 24, "blocks.1.hook_resid_pre", model_name=str(model), context_size=32, seed=2,
                     sparsity_bias=0.2)
    home = root / "home"
    studio = Studio.open(home=home)
    sae_id = register_sae_from_path(studio, write_saelens(sae, root / "sae"), name="tiny-ai", source="trained").id
    extract(studio, sae_id, str(model), "builtin:corpus", n_tokens=32 * 32, context_size=32, top_k=5,
            interval_examples=0, neuronpedia=False)
    with studio.sessions.begin() as s:
        live = sorted(i for i, dead in s.query(FeatureSummary.feature_index, FeatureSummary.dead) if not dead)
        add_explanation(s, sae_id, live[1], "dates in history books", method="import", source="imported")
    studio.sessions.kw["bind"].dispose()
    with FakeOpenAI(lambda body: ANSWER) as fake, serve_studio(home) as url:
        yield {"url": url, "sae_id": sae_id, "explain": live[0], "imported": live[1], "fake": fake}


@pytest.fixture(scope="module")
def ai_page(browser, ai_server) -> Iterator[object]:
    pg = error_recording_page(browser, str(ai_server["url"]))
    yield pg
    pg.context.close()


def test_explain_button_shows_the_new_explanation(ai_page, ai_server, shoot) -> None:
    page, fake = ai_page, ai_server["fake"]
    page.goto(f"/saes/{ai_server['sae_id']}/features/{ai_server['explain']}")
    page.get_by_test_id("feature-dashboard").wait_for()
    page.get_by_role("button", name="Explain", exact=True).click()
    form = page.get_by_test_id("explain-feature")
    form.get_by_label("Endpoint").fill(str(fake.url))
    form.get_by_label("Model").fill("fake-llm")
    form.get_by_role("button", name="Explain this feature").click()
    expect(form.get_by_test_id("new-explanation")).to_contain_text("kittens and cats", timeout=60_000)
    shown = page.get_by_test_id("explanations").get_by_test_id("explanation")
    expect(shown).to_have_count(1)
    expect(shown.first).to_contain_text("np_max-act-logits")
    expect(shown.first).to_contain_text("fake-llm")
    expect(shown.first).to_contain_text("generated")
    assert fake.requests and fake.requests[-1]["model"] == "fake-llm"
    shoot(page, "autointerp-01-explained")
    assert page.page_errors == []


def test_browser_unexplained_filter(ai_page, ai_server, shoot) -> None:
    page = ai_page
    page.goto(f"/saes/{ai_server['sae_id']}")
    browser_card = page.get_by_test_id("feature-browser")
    rows = browser_card.get_by_test_id("feature-row")
    expect(rows).to_have_count(24)
    browser_card.get_by_test_id("filter-explained").select_option("yes")
    expect(rows).not_to_have_count(24)
    expect(browser_card).to_contain_text("dates in history books")
    explained = {int(t.split()[0]) for t in rows.all_inner_texts()}
    assert ai_server["imported"] in explained
    browser_card.get_by_test_id("filter-explained").select_option("no")
    expect(browser_card.get_by_text(f"{24 - len(explained)} features", exact=True)).to_be_visible()
    expect(rows).to_have_count(24 - len(explained))
    unexplained = {int(t.split()[0]) for t in rows.all_inner_texts()}
    assert unexplained == set(range(24)) - explained
    shoot(page, "autointerp-02-explained-filter")
    assert page.page_errors == []


def test_search_box_finds_features_by_explanation(ai_page, ai_server, shoot) -> None:
    page = ai_page
    page.goto("/")
    box = page.get_by_test_id("explanation-search-input")
    box.fill("history dates")
    box.press("Enter")
    hit = page.get_by_test_id("search-hit")
    expect(hit).to_have_count(1)
    expect(hit).to_contain_text(f"tiny-ai · feature {ai_server['imported']}")
    assert "/search?q=history" in page.url
    shoot(page, "autointerp-03-search")
    hit.get_by_role("link").click()
    page.get_by_test_id("feature-dashboard").wait_for()
    assert page.url.endswith(f"/saes/{ai_server['sae_id']}/features/{ai_server['imported']}")
    expect(page.get_by_test_id("explanations")).to_contain_text("dates in history books")
    assert page.page_errors == []
