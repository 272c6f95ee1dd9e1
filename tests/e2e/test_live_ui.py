"""Live activations in Chromium against their own `mistudio serve` (a tiny GPT-2 and an extracted random SAE in a
fresh home): type into a feature's Test box and see the tokens highlighted with the values live inference gives;
the SAE's "Which features fire" view lists a clicked token's features and links to a dashboard."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.conftest import _require_browser, error_recording_page, serve_studio

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
expect = pytest.importorskip("playwright.sync_api").expect

TEXT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A home with one extracted SAE, the feature that fires most on TEXT (and its live values, computed in this
    process), and `mistudio serve` on that home."""
    _require_browser()
    from mistudio.catalog.service import register_sae_from_path
    from mistudio.demo import random_sae
    from mistudio.extraction.service import extract
    from mistudio.inference.model_server import model_server
    from mistudio.inference.sae_session import open_sae
    from mistudio.saes.formats import write_saelens
    from mistudio.studio import Studio
    from mistudio.testing.tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("live-e2e")
    model = build_tiny_model("gpt2", root / "model")
    sae = random_sae(64, 48, "blocks.1.hook_resid_pre", model_name=str(model), context_size=32, seed=4,
                     sparsity_bias=0.0)
    home = root / "home"
    studio = Studio.open(home=home)
    sae_id = register_sae_from_path(studio, write_saelens(sae, root / "sae"), name="tiny-live", source="trained").id
    extract(studio, sae_id, str(model), "builtin:corpus", n_tokens=32 * 16, context_size=32, top_k=3,
            interval_examples=0, neuronpedia=False)
    expected = open_sae(studio, sae_id).activations(TEXT, top_k=10)  # what the view asks for
    feature = expected.overall[0].index
    values = open_sae(studio, sae_id).activations(TEXT, features=[feature]).features[0].values
    model_server(studio).clear()
    studio.sessions.kw["bind"].dispose()
    with serve_studio(home) as url:
        yield {"url": url, "sae_id": sae_id, "feature": feature, "values": values, "tokens": expected.tokens,
               "overall": [o.index for o in expected.overall]}


@pytest.fixture(scope="module")
def live_page(browser, live_server) -> Iterator[object]:
    pg = error_recording_page(browser, str(live_server["url"]))
    yield pg
    pg.context.close()


def test_test_box_highlights_the_typed_text(live_page, live_server, shoot) -> None:
    page = live_page
    feature, values = live_server["feature"], live_server["values"]
    page.goto(f"/saes/{live_server['sae_id']}/features/{feature}")
    box = page.get_by_test_id("feature-test-box")
    box.get_by_label("Text to test").fill(TEXT)
    box.get_by_role("button", name="Test", exact=True).click()
    result = box.get_by_test_id("test-box-result")
    result.wait_for()
    tokens = result.locator(".tok")
    expect(tokens).to_have_count(len(live_server["tokens"]))
    shown = [float(tokens.nth(i).get_attribute("data-value")) for i in range(tokens.count())]
    assert shown == pytest.approx(values, rel=1e-6, abs=1e-7)
    highlighted = result.get_by_test_id("highlighted-token")
    assert highlighted.count() == sum(v > 0 for v in values) > 0
    assert result.locator(".tok.max").count() == 1
    highlighted.first.hover()
    expect(result.locator(".hover-readout")).to_contain_text("=")
    shoot(page, "live-01-test-box")
    assert page.page_errors == []


def test_which_features_fire_lists_and_links(live_page, live_server, shoot) -> None:
    page = live_page
    sae_id = live_server["sae_id"]
    page.goto(f"/saes/{sae_id}")
    page.get_by_role("button", name="Which features fire?").click()
    view = page.get_by_test_id("text-inference")
    view.get_by_label("Text", exact=True).fill(TEXT)
    view.get_by_role("button", name="Run", exact=True).click()
    overall = view.get_by_test_id("overall-features")
    overall.wait_for()
    links = overall.get_by_test_id("feature-link")
    assert [int(t.removeprefix("Feature ")) for t in links.all_inner_texts()] == live_server["overall"]
    view.locator(".tok").nth(2).click()
    expect(view.get_by_test_id("token-features")).to_contain_text("(token 2)")
    shoot(page, "live-02-which-features-fire")
    links.first.click()
    page.get_by_test_id("feature-dashboard").wait_for()
    assert page.url.endswith(f"/saes/{sae_id}/features/{live_server['overall'][0]}")
    assert page.page_errors == []
