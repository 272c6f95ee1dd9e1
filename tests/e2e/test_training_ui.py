"""Training from the Train page in Chromium against its own `mistudio serve` (a tiny GPT-2 in a fresh home): start a
small TopK run, see its live progress, pause and resume it, watch it complete, and open the trained SAE's page with
its curves, evaluations and density histogram."""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Iterator

import pytest

from e2e.conftest import _require_browser, error_recording_page, serve_studio

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]
expect = pytest.importorskip("playwright.sync_api").expect

HOOK = "blocks.1.hook_resid_pre"
N_TOKENS = 128_000  # 1,000 steps of 128 tokens (~7 s at 17k tok/s): long enough to pause before the end
D_SAE = 128


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def train_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A tiny GPT-2, a text file with enough distinct windows for the run, and `mistudio serve` on a fresh home."""
    _require_browser()
    from mistudio.datasets.sources import BUILTIN_CORPUS, load_texts
    from mistudio.testing.tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("train-e2e")
    texts = [t for _, t in load_texts(BUILTIN_CORPUS).iter_docs()]
    model = build_tiny_model("gpt2", root / "model", corpus_texts=texts)
    words = " ".join(texts).split()
    rng = random.Random(0)
    sentences = (" ".join(rng.choice(words) for _ in range(rng.randint(8, 20))) + "." for _ in range(20000))
    dataset = root / "words.txt"
    dataset.write_text("\n".join(sentences), encoding="utf-8")
    home = root / "home"
    home.mkdir()
    with serve_studio(home) as url:
        yield {"url": url, "model": str(model), "dataset": str(dataset)}


@pytest.fixture(scope="module")
def train_page(browser, train_server) -> Iterator[object]:
    pg = error_recording_page(browser, train_server["url"])
    yield pg
    pg.context.close()


def test_train_watch_pause_resume_and_open_the_trained_sae(train_page, train_server, shoot) -> None:
    page = train_page
    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Train").click()
    form = page.get_by_test_id("train-form")
    form.get_by_test_id("train-model").fill(train_server["model"])
    form.get_by_test_id("train-dataset").fill(train_server["dataset"])
    form.get_by_test_id("train-n-tokens").fill(str(N_TOKENS))
    form.get_by_test_id("train-batch-tokens").fill("128")
    form.get_by_test_id("train-context-size").fill("32")
    form.get_by_test_id("train-device").fill("cpu")
    form.get_by_label("Hook of SAE 1", exact=True).fill(HOOK)
    form.get_by_label("Architecture of SAE 1", exact=True).select_option("topk")
    form.get_by_label("Width unit of SAE 1", exact=True).select_option("d_sae")
    form.get_by_label("Width of SAE 1", exact=True).fill(str(D_SAE))
    form.get_by_label("k of SAE 1", exact=True).fill("8")
    form.get_by_label("Name of SAE 1", exact=True).fill("e2e topk")
    form.get_by_test_id("train-start").click()

    watch = page.get_by_test_id("train-watch")
    expect(watch).to_have_attribute("data-status", "running", timeout=60_000)
    # live progress: the first logged steps give tokens/s and the training batches' L0 and explained variance
    expect(watch.get_by_test_id("live-tokens-per-s")).not_to_have_text("—", timeout=60_000)
    watch.get_by_role("button", name="Pause").click()
    expect(watch).to_have_attribute("data-status", "paused", timeout=60_000)
    expect(watch.get_by_test_id("live-l0")).to_have_text("8")
    expect(watch.get_by_test_id("live-ev")).to_contain_text("%")
    expect(watch.get_by_test_id("curve-loss").get_by_test_id("line-series")).to_have_count(1)
    training_id = _get(f"{train_server['url']}/api/v1/trainings")["items"][0]["id"]
    paused_at = _get(f"{train_server['url']}/api/v1/trainings/{training_id}/curves")["steps"][-1]["tokens"]
    assert 0 < paused_at < N_TOKENS
    expect(watch.get_by_test_id("live-tokens")).to_contain_text(f"{paused_at:,} / {N_TOKENS:,}")
    shoot(page, "training-01-paused")
    watch.get_by_role("button", name="Resume").click()
    expect(watch).to_have_attribute("data-status", "completed", timeout=240_000)

    training = _get(f"{train_server['url']}/api/v1/trainings/{training_id}")
    assert training["status"] == "completed" and training["tokens_seen"] == N_TOKENS
    steps = _get(f"{train_server['url']}/api/v1/trainings/{training_id}/curves")["steps"]
    tokens = [s["tokens"] for s in steps]
    assert tokens == sorted(set(tokens)) and tokens[-1] == N_TOKENS  # the resume went on, never back
    link = watch.get_by_test_id("trained-sae-link")
    expect(link).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("trainings-table").get_by_test_id("training-row")).to_have_attribute(
        "data-status", "completed")
    shoot(page, "training-02-completed")

    link.get_by_role("link").click()
    detail = page.get_by_test_id("sae-detail")
    expect(detail.locator(".badge-trained")).to_have_text("Trained")
    curves = detail.get_by_test_id("training-curves")
    series = curves.get_by_test_id("curve-loss").get_by_test_id("line-series")
    expect(series).to_have_count(1)
    assert int(series.get_attribute("data-points")) == len(steps)
    expect(curves.get_by_test_id("eval-summary")).to_contain_text("CE loss recovered")
    ev_points = curves.get_by_test_id("curve-ev").locator('[data-label="held-out"]')
    assert int(ev_points.get_attribute("data-points")) >= 1
    assert curves.get_by_test_id("density-histogram").locator("rect").count() > 0
    shoot(page, "training-03-sae-page")
    assert page.page_errors == []
