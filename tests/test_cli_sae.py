"""The `mistudio sae` commands end to end (real catalog, fake hub), including --json output and
one-line errors with a non-zero exit code."""

from __future__ import annotations

import json
from pathlib import Path

from fakes import hub_repos as R
from sae_factories import make_sae, write_in_format
from typer.testing import CliRunner

from mistudio.cli.main import app

runner = CliRunner()


def _json(args: list[str]) -> dict | list:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_browse_download_list_show_delete(fake_hub, isolated_home: Path) -> None:
    listing = _json(["sae", "browse", R.SAELENS_REPO, "--json"])
    table = runner.invoke(app, ["sae", "browse", R.GEMMA_SCOPE_REPO], terminal_width=200)
    assert table.exit_code == 0 and "gemma_scope" in table.output and "KB" in table.output
    path = listing["saes"][0]["path"]
    sae = _json(["sae", "download", R.SAELENS_REPO, "--path", path, "--json"])
    assert sae["status"] == "ready" and sae["source"] == "huggingface" and sae["path_in_repo"] == path
    gemma = _json(["sae", "download", R.GEMMA_SCOPE_REPO, "--layer", str(R.GEMMA_SCOPE_LAYERS[0]), "--width", "16k",
                   "--l0", str(sorted(R.GEMMA_SCOPE_L0S["width_16k"])[0]), "--json"])
    assert gemma["source"] == "gemma_scope" and gemma["architecture"] == "jumprelu"
    listed = _json(["sae", "list", "--source", "gemma_scope", "--json"])
    assert [it["id"] for it in listed["items"]] == [gemma["id"]]
    shown = _json(["sae", "show", gemma["id"][:8], "--json"])
    assert shown["config"]["format"] == "gemma_scope"
    table = runner.invoke(app, ["sae", "list"])
    assert table.exit_code == 0 and "SAEs (2)" in table.output
    assert runner.invoke(app, ["sae", "delete", gemma["id"], "--yes"]).exit_code == 0
    assert _json(["sae", "list", "--json"])["total"] == 1


def test_errors_are_one_line_with_nonzero_exit(fake_hub, isolated_home: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["sae", "browse", "nobody/nothing"])
    assert missing.exit_code == 1 and "not found" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    bad = runner.invoke(app, ["sae", "show", "does-not-exist"])
    assert bad.exit_code == 1 and "not found" in bad.output
    wrong_l0 = runner.invoke(app, ["sae", "download", R.GEMMA_SCOPE_REPO, "--layer", "99", "--width", "16k",
                                   "--l0", "1"])
    assert wrong_l0.exit_code == 1


def test_import_and_convert(isolated_home: Path, tmp_path: Path) -> None:
    folder = write_in_format(make_sae("jumprelu"), "gemma_scope", tmp_path / "gs")
    sae = _json(["sae", "import", str(folder), "--name", "local-gs", "--json"])
    assert sae["format"] == "gemma_scope" and sae["name"] == "local-gs"
    out = tmp_path / "as-saelens"
    result = runner.invoke(app, ["sae", "convert", sae["id"], "--to", "saelens", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "cfg.json").exists() and (out / "sae_weights.safetensors").exists()


def test_register_trained_sae_with_training_record(isolated_home: Path, tmp_path: Path) -> None:
    training = _json(["training", "add", "--name", "run-7", "--model", "tiny-gpt2", "--hook",
                      "blocks.1.hook_resid_post", "--metrics", '{"l0": 31.0}', "--json"])
    folder = write_in_format(make_sae("standard"), "mistudio", tmp_path / "trained")
    sae = _json(["sae", "import", str(folder), "--training", training["id"], "--json"])
    assert sae["source"] == "trained" and sae["training_id"] == training["id"]
    assert _json(["sae", "list", "--source", "trained", "--json"])["total"] == 1
    assert [t["name"] for t in _json(["training", "list", "--json"])["items"]] == ["run-7"]
