"""The studio end to end in Chromium: Gemma Scope download, extraction, feature dashboard, Neuronpedia export,
jobs list, delete. The steps run in order on one page and share `FLOW`; a step whose input is missing skips."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from fakes.hub_repos import GEMMA_SCOPE_D_IN, GEMMA_SCOPE_REPO, GEMMA_SCOPE_WIDTHS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
expect = pytest.importorskip("playwright.sync_api").expect  # auto-retrying assertions

FLOW: dict[str, object] = {}
WIDTH_FOLDER = "width_16k"
D_SAE = GEMMA_SCOPE_WIDTHS[WIDTH_FOLDER]


def _need(key: str) -> object:
    if key not in FLOW:
        pytest.skip(f"needs `{key}` from an earlier step of the flow")
    return FLOW[key]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight gemma2-family LM whose residual width matches the fake Gemma Scope SAEs."""
    from mistudio.testing.tiny_models import build_tiny_model

    return build_tiny_model("gemma2", tmp_path_factory.mktemp("tiny-gemma2"), n_layers=2, d_model=GEMMA_SCOPE_D_IN)


def test_empty_state(page, shoot) -> None:
    page.goto("/")
    empty = page.get_by_test_id("empty-state")
    empty.wait_for()
    assert "mistudio demo" in empty.inner_text()
    shoot(page, "01-saes-empty")


def test_unknown_repo_error_shown_inline(page, shoot) -> None:
    page.goto("/")
    page.get_by_role("button", name="+ Download from HuggingFace").click()
    dialog = page.get_by_test_id("download-hf")
    dialog.get_by_label("Repository id").fill("nobody/no-such-repo")
    dialog.get_by_role("button", name="Browse").click()
    error = dialog.get_by_test_id("browse-error")
    error.wait_for()
    assert "no-such-repo" in error.inner_text() or "not found" in error.inner_text().lower()
    shoot(page, "02-download-unknown-repo", full_page=False)
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")


def test_release_search_lists_the_sae_ids_with_neuronpedia_ids(page, shoot) -> None:
    page.goto("/")
    page.get_by_role("button", name="+ Download from HuggingFace").click()
    dialog = page.get_by_test_id("download-hf")
    dialog.get_by_role("tab", name="SAELens release").click()
    dialog.get_by_label("SAELens release").fill("gemma-scope-2b-pt-res-canonical")
    dialog.get_by_test_id("release-results").get_by_role("button").first.click()
    picker = dialog.get_by_role("combobox", name=re.compile(r"^SAE\b"))
    expect(picker).to_contain_text("layer_0/width_16k/canonical — gemma-2-2b/0-gemmascope-res-16k")
    expect(dialog.get_by_test_id("release-sae-preview")).to_contain_text("layer_0/width_16k/average_l0_105")
    shoot(page, "02b-download-release-search", full_page=False)
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")


def test_browse_gemma_scope_and_download(page, shoot) -> None:
    page.goto("/")
    page.get_by_role("button", name="+ Download from HuggingFace").click()
    dialog = page.get_by_test_id("download-hf")
    dialog.get_by_label("Repository id").fill(GEMMA_SCOPE_REPO)
    dialog.get_by_label("Repository id").press("Enter")
    pickers = dialog.get_by_test_id("gemma-scope-pickers")
    pickers.wait_for()
    pickers.get_by_label("Layer").select_option("0")
    width_label = pickers.get_by_label("Width").locator("option").filter(has_text=re.compile("16k")).first.get_attribute("value")
    pickers.get_by_label("Width").select_option(width_label)
    expect(pickers.get_by_label("Average L0").locator("option")).to_have_text(["22", "41", "82"])
    pickers.get_by_label("Average L0").select_option("22")
    preview = dialog.get_by_test_id("hub-preview")
    expect(preview.get_by_test_id("preview-dims")).to_have_text(f"{GEMMA_SCOPE_D_IN} → {D_SAE}")
    expect(preview.get_by_test_id("memory-estimate")).to_contain_text("parameters")
    shoot(page, "03-download-gemma-scope-pickers", full_page=False)
    dialog.get_by_role("button", name=re.compile(r"^Download")).click()
    status = dialog.get_by_test_id("download-status")
    status.wait_for()
    shoot(page, "04-download-progress", full_page=False)
    status.get_by_text("Downloaded and added to your SAEs.").wait_for(timeout=60_000)
    shoot(page, "05-download-complete", full_page=False)
    dialog.get_by_role("button", name="Done").click()
    card = page.get_by_test_id("sae-card").first
    card.wait_for()
    page.wait_for_function("() => !document.querySelector('[data-testid=sae-card] .status-downloading')")
    expect(card.get_by_test_id("source-badge")).to_have_text("Gemma Scope")
    expect(card.get_by_test_id("dimensions")).to_have_text(f"{GEMMA_SCOPE_D_IN} → {D_SAE}")
    expect(card).to_contain_text("layer_0/width_16k/average_l0_22")
    FLOW["sae_id"] = card.get_attribute("data-sae-id")
    shoot(page, "06-saes-panel")


def test_filters_and_search(page) -> None:
    _need("sae_id")
    page.goto("/")
    page.get_by_test_id("sae-card").first.wait_for()
    page.get_by_label("Source").select_option("upload")
    page.get_by_text("No SAE matches these filters.").wait_for()
    page.get_by_label("Source").select_option("gemma_scope")
    page.get_by_test_id("sae-card").first.wait_for()
    page.get_by_label("Search", exact=True).fill("width_16k")
    page.wait_for_timeout(600)
    assert page.get_by_test_id("sae-card").count() == 1


def test_extraction(page, shoot, tiny_model: Path) -> None:
    sae_id = _need("sae_id")
    page.goto(f"/saes/{sae_id}")
    launcher = page.get_by_test_id("extraction-launcher")
    launcher.wait_for()
    shoot(page, "07-sae-detail")
    launcher.get_by_label("Model").fill(str(tiny_model))
    launcher.get_by_label("Dataset").fill("builtin:corpus")
    launcher.get_by_label("Tokens").fill("2048")
    launcher.get_by_label("Context size").fill("32")
    launcher.get_by_role("button", name="Start extraction").click()
    launcher.get_by_test_id("extraction-progress").wait_for()
    shoot(page, "08-extraction-progress", full_page=False)
    done = page.locator('[data-testid="feature-browser"], [data-testid="extraction-progress"] .error')
    done.first.wait_for(timeout=180_000)
    failure = launcher.locator(".error")
    assert failure.count() == 0, f"extraction failed: {failure.first.inner_text()}"
    rows = page.get_by_test_id("feature-row")
    rows.first.wait_for()
    assert rows.count() > 0
    FLOW["extracted"] = True
    shoot(page, "09-feature-browser")


def test_feature_dashboard(page, shoot) -> None:
    sae_id = _need("sae_id")
    _need("extracted")
    page.goto(f"/saes/{sae_id}")
    page.get_by_test_id("feature-row").first.get_by_role("link").click()
    dashboard = page.get_by_test_id("feature-dashboard")
    dashboard.wait_for()
    tokens = dashboard.get_by_test_id("highlighted-token")
    tokens.first.wait_for()
    assert tokens.count() > 0
    assert dashboard.locator(".tok.max").count() >= 1
    tokens.first.hover()
    assert "=" in dashboard.locator(".hover-readout").first.inner_text()
    dashboard.get_by_test_id("activation-histogram").locator("svg rect").first.wait_for()
    dashboard.get_by_label("Label").fill("e2e label")
    dashboard.get_by_role("button", name="Save label").click()
    dashboard.get_by_text("Saved").wait_for()
    shoot(page, "10-feature-dashboard")
    page.get_by_role("button", name=re.compile("dark theme", re.I)).click()
    shoot(page, "11-feature-dashboard-dark", full_page=False)
    page.get_by_role("button", name=re.compile("light theme", re.I)).click()


def test_labels_import(page, shoot, tmp_path: Path) -> None:
    sae_id = _need("sae_id")
    _need("extracted")
    page.goto(f"/saes/{sae_id}")
    bad = tmp_path / "labels.txt.json"
    bad.write_text("{not json")
    page.get_by_test_id("labels-file").set_input_files(str(bad))
    expect(page.get_by_test_id("labels-error")).to_contain_text("labels.txt.json")
    good = tmp_path / "labels.csv"
    good.write_text("feature_index,description,method\n0,quoted speech e2e,manual\n1,numbers e2e,manual\n")
    page.get_by_test_id("labels-file").set_input_files(str(good))
    expect(page.get_by_test_id("labels-imported")).to_contain_text("Imported 2 explanation(s) for 2 feature(s)")
    page.get_by_label("Search label, explanation or top token").fill("quoted speech e2e")
    expect(page.get_by_test_id("feature-row")).to_have_count(1)
    shoot(page, "11b-labels-imported", full_page=False)


def test_link_a_training_run(page, shoot) -> None:
    sae_id = _need("sae_id")
    page.goto(f"/saes/{sae_id}")
    form = page.get_by_test_id("training-link-form")
    form.get_by_text("Record a training run").click()
    form.get_by_label("Name").fill("e2e training run")
    form.get_by_label("Dataset").fill("monology/pile-uncopyrighted")
    form.get_by_label("Training tokens").fill("1000000")
    form.get_by_role("button", name="Record and link").click()
    linked = page.get_by_test_id("training-link")  # after the page reloads the SAE, its config and statistics
    expect(linked).to_contain_text("e2e training run", timeout=20_000)
    expect(linked).to_contain_text("1,000,000 tokens")
    assert page.request.get(f"/api/v1/saes/{sae_id}").json()["training_id"]
    shoot(page, "11c-training-linked", full_page=False)


def test_export_validate_and_download(page, shoot, tmp_path: Path) -> None:
    sae_id = _need("sae_id")
    _need("extracted")
    page.goto(f"/saes/{sae_id}")
    page.get_by_role("button", name="Export to Neuronpedia").click()
    dialog = page.get_by_test_id("export-dialog")
    dialog.get_by_test_id("export-estimate").get_by_text("Estimated size").wait_for()
    dialog.get_by_role("radio", name="Index range").check()  # the estimate follows the selection
    dialog.get_by_label("From index").fill("0")
    dialog.get_by_label("to (exclusive)").fill("8")
    expect(dialog.get_by_test_id("export-estimate")).to_contain_text("· 8 features")
    dialog.get_by_role("radio", name=re.compile("^All features")).check()
    dialog.get_by_role("checkbox", name=re.compile("SAEDashboard batch files")).check()
    shoot(page, "12-export-dialog", full_page=False)
    dialog.get_by_role("button", name="Validate").click()
    check = dialog.get_by_test_id("config-check")
    check.wait_for(timeout=60_000)
    assert check.inner_text().startswith("✓"), check.inner_text()
    shoot(page, "13-export-validated", full_page=False)
    dialog.get_by_role("button", name="Export", exact=True).click()
    progress = page.get_by_test_id("export-progress")
    progress.wait_for()
    progress.get_by_test_id("stage-row").first.wait_for()
    shoot(page, "14-export-progress", full_page=False)
    complete = page.get_by_test_id("export-complete")
    complete.wait_for(timeout=180_000)
    jobs = page.request.get("/api/v1/jobs?limit=5").json()["items"]
    export_job = next(j for j in jobs if j["type"] == "export")
    assert export_job["status"] == "completed"
    assert [st["status"] for st in export_job["stages"]] == ["completed"] * len(export_job["stages"])
    complete.get_by_role("button", name="Validate archive").click()
    report = complete.get_by_test_id("validation-report")
    report.wait_for(timeout=60_000)
    assert "✓ valid" in report.inner_text(), report.inner_text()
    shoot(page, "15-export-complete", full_page=False)
    with page.expect_download() as info:
        complete.get_by_test_id("download-archive").click()
    archive = tmp_path / "export.zip"
    info.value.save_as(archive)
    assert zipfile.is_zipfile(archive)
    with zipfile.ZipFile(archive) as zf:  # the ticked option reached the server
        names = zf.namelist()
    assert "neuronpedia/batch-0.json" in names and any("/activations/batch-" in n for n in names)
    from mistudio.export.validate.validator import validate_export

    report = validate_export(archive)
    assert report.ok, report.to_text()
    FLOW["exported"] = True
    complete.get_by_role("button", name="View upload instructions").click()
    complete.get_by_test_id("upload-instructions").wait_for()
    page.keyboard.press("Escape")


def test_incremental_export_builds_on_the_previous_one(page, shoot) -> None:
    sae_id = _need("sae_id")
    _need("exported")
    page.goto(f"/saes/{sae_id}")
    page.get_by_role("button", name="Export to Neuronpedia").click()
    dialog = page.get_by_test_id("export-dialog")
    base = dialog.get_by_test_id("base-export")
    base.wait_for()
    previous = page.request.get("/api/v1/exports", params={"sae_id": sae_id}).json()["items"][0]
    base.select_option(previous["id"])
    shoot(page, "15b-incremental-export", full_page=False)
    dialog.get_by_role("button", name="Export", exact=True).click()
    page.get_by_test_id("export-complete").wait_for(timeout=180_000)
    newest = page.request.get("/api/v1/exports", params={"sae_id": sae_id}).json()["items"][0]
    assert newest["id"] != previous["id"] and newest["base_export_id"] == previous["id"]
    assert newest["status"] == "completed" and newest["feature_count"] == previous["feature_count"]
    job = page.request.get(f"/api/v1/jobs/{newest['job_id']}").json()
    assert job["result"]["n_reused"] > 0, job["result"]
    page.keyboard.press("Escape")


def test_jobs_list_survives_reload(page, shoot) -> None:
    _need("sae_id")
    page.goto("/jobs")
    page.reload()
    jobs = page.get_by_test_id("jobs-list")
    jobs.get_by_test_id("job-row").first.wait_for()
    types = {row.get_attribute("data-type") for row in jobs.get_by_test_id("job-row").all()}
    assert "sae_download" in types
    if FLOW.get("extracted"):
        assert "extraction" in types
    if FLOW.get("exported"):
        assert "export" in types
    shoot(page, "16-jobs")


def test_delete_sae(page, shoot) -> None:
    sae_id = _need("sae_id")
    page.goto("/")
    card = page.locator(f'[data-sae-id="{sae_id}"]')
    card.get_by_role("button", name="Delete").click()
    confirm = page.get_by_test_id("confirm-dialog")
    shoot(page, "17-delete-confirm", full_page=False)
    confirm.get_by_role("button", name="Delete").click()
    card.wait_for(state="detached")
    page.get_by_test_id("empty-state").wait_for()
    assert not page.console_errors or all("404" in e or "Failed to load resource" in e for e in page.console_errors), page.console_errors


def test_import_local_sae(page, shoot, e2e_hub, tmp_path: Path) -> None:
    from fakes.hub_repos import SAELENS_REPO

    folder = e2e_hub.file_path(SAELENS_REPO, "blocks.0.hook_resid_pre")
    archive = tmp_path / "my-saelens-sae.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, f"blocks.0.hook_resid_pre/{path.name}")
    page.goto("/")
    page.get_by_role("button", name="Import local SAE").click()
    dialog = page.get_by_test_id("import-sae")
    dialog.get_by_test_id("import-file").set_input_files(str(archive))
    expect(dialog.get_by_test_id("detected-format")).to_have_text("SAELens")
    shoot(page, "18-import-detected", full_page=False)
    dialog.get_by_role("button", name="Import", exact=True).click()
    done = dialog.get_by_test_id("import-done")
    done.wait_for()
    expect(done).to_contain_text("16 → 64")
    dialog.get_by_role("button", name="Done").click()
    card = page.get_by_test_id("sae-card").first
    expect(card.get_by_test_id("source-badge")).to_have_text("Upload")
    expect(card.get_by_test_id("dimensions")).to_have_text("16 → 64")
    shoot(page, "19-saes-after-import")


def test_import_gemma_scope_npz_with_model_and_hook(page, shoot, e2e_hub, tmp_path: Path) -> None:
    """A params.npz on its own names neither model nor hook: the dialog's fields fill them in."""
    npz = e2e_hub.file_path(GEMMA_SCOPE_REPO, "layer_5/width_16k/average_l0_41") / "params.npz"
    archive = tmp_path / "gemma-scope-l5.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(npz, "params.npz")
    page.goto("/")
    page.get_by_role("button", name="Import local SAE").click()
    dialog = page.get_by_test_id("import-sae")
    dialog.get_by_test_id("import-file").set_input_files(str(archive))
    expect(dialog.get_by_test_id("detected-format")).to_contain_text("Gemma Scope")
    dialog.get_by_label("Model (when the files do not say)").fill("google/gemma-2-2b")
    dialog.get_by_label("Hook (when the files do not say)").fill("blocks.5.hook_resid_post")
    shoot(page, "20-import-gemma-scope-with-hook", full_page=False)
    dialog.get_by_role("button", name="Import", exact=True).click()
    expect(dialog.get_by_test_id("import-done")).to_contain_text(f"{GEMMA_SCOPE_D_IN} → 256")
    items = page.request.get("/api/v1/saes", params={"search": "gemma-scope-l5"}).json()["items"]
    assert [(s["model_name"], s["hook_name"], s["layer"]) for s in items] == [
        ("google/gemma-2-2b", "blocks.5.hook_resid_post", 5)]
    dialog.get_by_role("button", name="Done").click()
