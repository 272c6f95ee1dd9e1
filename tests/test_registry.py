"""The SAELens registry: the shipped copy stays in step with the installed sae-lens; lookups agree with SAELens's
own directory; registry data lands on an SAEConfig as SAELens applies it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mistudio.errors import InvalidInputError, NotFoundError
from mistudio.saes import registry as reg
from mistudio.saes.model import SAEConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def registry() -> reg.Registry:
    return reg.get_registry()


def test_shipped_copy_matches_the_installed_sae_lens() -> None:
    installed = reg.installed_source()
    assert installed is not None, "sae-lens (a dev dependency) should be installed for the test suite"
    shipped = reg.shipped_source()
    advice = (f"the registry copy shipped in src/mistudio/data/ is from sae-lens {shipped.sae_lens_version} "
              f"but sae-lens {installed.sae_lens_version} is installed: run `{reg.REFRESH_COMMAND}` and commit "
              "src/mistudio/data/pretrained_saes.yaml and pretrained_saes.source.json")
    assert shipped.sae_lens_version == installed.sae_lens_version, advice
    assert shipped.path.read_bytes() == installed.path.read_bytes(), advice
    recorded = json.loads(reg.SHIPPED_SOURCE.read_text())
    assert recorded["sha256"] == hashlib.sha256(shipped.path.read_bytes()).hexdigest(), advice


def test_the_package_data_ships_the_registry_copy() -> None:
    package_data = next(line for line in (REPO_ROOT / "pyproject.toml").read_text().splitlines()
                        if line.startswith("mistudio = ["))
    assert '"data/**/*"' in package_data
    assert reg.SHIPPED_REGISTRY.parent == REPO_ROOT / "src" / "mistudio" / "data"


def test_registry_agrees_with_sae_lens_directory(registry: reg.Registry) -> None:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    oracle = get_pretrained_saes_directory()
    assert registry.names() == list(oracle)
    for name, lookup in oracle.items():
        release = registry.release(name)
        assert (release.repo_id, release.model, release.conversion_func) == (
            lookup.repo_id, lookup.model, lookup.conversion_func), name
        assert release.config_overrides == (lookup.config_overrides or {}), name
        assert {s.id: s.path for s in release.saes} == lookup.saes_map, name
        assert {s.id: s.neuronpedia for s in release.saes} == lookup.neuronpedia_id, name
        assert {s.id: s.norm_scaling_factor for s in release.saes
                if s.norm_scaling_factor is not None} == lookup.norm_scaling_factor, name
        assert {s.id: s.l0 if s.l0 is not None else 0.0 for s in release.saes} == lookup.expected_l0, name


def test_finding_the_installed_registry_does_not_import_sae_lens(tmp_path: Path) -> None:
    code = ("import sys; from mistudio.saes.registry import get_registry; r = get_registry(); "
            "print(r.source.origin, len(r), 'sae_lens' in sys.modules, 'transformer_lens' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"MISTUDIO_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}).stdout.split()
    assert out[0] == "installed" and int(out[1]) > 100 and out[2:] == ["False", "False"]


def test_compact_cache_is_written_once_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mistudio.settings import reset_settings

    monkeypatch.setenv("MISTUDIO_HOME", str(tmp_path))
    reset_settings()
    try:
        first = reg.load_registry(reg.shipped_source())
        caches = list((tmp_path / "cache").glob("sae-lens-registry-*.json"))
        assert len(caches) == 1 and first.sha256[:24] in caches[0].name
        again = reg.load_registry(reg.shipped_source())
        assert again.names() == first.names()
        name = "gpt2-small-res-jb"
        assert again.release(name) == first.release(name)
        assert first.source.origin == "shipped" and first.sae_lens_version == reg.shipped_source().sae_lens_version
    finally:
        reset_settings()


def test_shipped_copy_is_used_when_sae_lens_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reg, "installed_source", lambda: None)
    reg.get_registry.cache_clear()
    try:
        assert reg.get_registry().source.origin == "shipped"
    finally:
        reg.get_registry.cache_clear()


def test_search_by_name_repo_and_model(registry: reg.Registry) -> None:
    names = [r.name for r in registry.search("gpt2-small-res-jb")]
    assert names[0] == "gpt2-small-res-jb" and "gpt2-small-res-jb-feature-splitting" in names
    by_repo = registry.search("GPT2-Small-SAEs-Reformatted")
    assert [r.name for r in by_repo] == ["gpt2-small-res-jb"]
    hit = by_repo[0]
    assert (hit.repo_id, hit.model, hit.family, hit.n_saes) == ("jbloom/GPT2-Small-SAEs-Reformatted",
                                                                 "gpt2-small", "saelens", 13)
    gemma = registry.search("gemma-2-2b gemma_2")
    assert gemma and all(r.model.startswith("gemma-2-2b") and r.family.startswith("gemma_2") for r in gemma)
    assert registry.search("no-such-release-anywhere") == []
    assert len(registry.search(None)) == len(registry)


def test_release_and_sae_errors_name_what_exists(registry: reg.Registry) -> None:
    with pytest.raises(NotFoundError, match="gpt2-small-res-jb"):
        registry.release("gpt2-small-res-j")
    with pytest.raises(NotFoundError, match=r"blocks\.0\.hook_resid_pre"):
        registry.release("gpt2-small-res-jb").sae("blocks.99.hook_resid_pre")


def test_lookup_by_repo_and_path(registry: reg.Registry) -> None:
    release, sae = registry.lookup("jbloom/GPT2-Small-SAEs-Reformatted", "blocks.3.hook_resid_pre/cfg.json") or (
        None, None)
    assert release is not None and sae is not None
    assert (release.name, sae.id, sae.neuronpedia) == ("gpt2-small-res-jb", "blocks.3.hook_resid_pre",
                                                       "gpt2-small/3-res-jb")
    # the canonical release (with Neuronpedia ids) wins over the full one listing the same folder
    found = registry.lookup("google/gemma-scope-2b-pt-res", "layer_0/width_16k/average_l0_105")
    assert found is not None and found[0].name == "gemma-scope-2b-pt-res-canonical"
    assert found[1].id == "layer_0/width_16k/canonical"
    assert registry.lookup("jbloom/GPT2-Small-SAEs-Reformatted", "blocks.3") is None
    assert {r.name for r in registry.releases_for_repo("JBLOOM/gpt2-small-saes-reformatted")} == {
        "gpt2-small-res-jb"}


def test_apply_registry_data_as_sae_lens_does(registry: reg.Registry) -> None:
    release = registry.release("gpt2-small-mlp-tm")
    sae = release.saes[0]
    data = registry.registry_data(release, sae)
    assert data["config_overrides"] == {"dataset_path": "Skylion007/openwebtext",
                                        "model_from_pretrained_kwargs": {"center_writing_weights": True}}
    assert "neuronpedia" not in data and data["norm_scaling_factor"] == sae.norm_scaling_factor
    cfg = SAEConfig(d_in=8, d_sae=16, hook_name="blocks.0.hook_mlp_out",
                    model_from_pretrained_kwargs={"center_writing_weights": False})
    reg.apply_registry_data(cfg, data)
    assert cfg.model_from_pretrained_kwargs == {"center_writing_weights": True}
    assert cfg.dataset_path == "Skylion007/openwebtext" and cfg.model_name == "gpt2-small"
    assert cfg.extra["norm_scaling_factor"] == sae.norm_scaling_factor and cfg.extra["registry"] == data
    assert set(data) == {"release", "sae_id", "repo_id", "path", "model", "l0", "variance_explained",
                         "norm_scaling_factor", "config_overrides", "sae_lens_version"}

    temporal = registry.release("temporal-sae-gemma-2-2b")
    cfg = SAEConfig(d_in=8, d_sae=16, model_name="from-files")
    reg.apply_registry_data(cfg, registry.registry_data(temporal, temporal.saes[0]))
    assert (cfg.model_name, cfg.hook_name, cfg.hook_layer) == ("gemma-2-2b", "blocks.12.hook_resid_post", 12)

    with pytest.raises(InvalidInputError, match="normalize_activations"):
        reg.apply_registry_data(SAEConfig(d_in=8, d_sae=16), {"config_overrides": {"normalize_activations": "x"}})


def test_cli_releases_lists_and_searches() -> None:
    from typer.testing import CliRunner

    from mistudio.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["sae", "releases", "gpt2-small-res-jb", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["items"][0] == {"name": "gpt2-small-res-jb", "repo_id": "jbloom/GPT2-Small-SAEs-Reformatted",
                                "model": "gpt2-small", "conversion_func": None, "family": "saelens", "n_saes": 13}
    assert data["total"] == len(data["items"]) and data["sae_lens_version"] == reg.get_registry().sae_lens_version
    table = runner.invoke(app, ["sae", "releases", "qwen"], terminal_width=200)
    assert table.exit_code == 0 and "qwen_scope" in table.output
    everything = json.loads(runner.invoke(app, ["sae", "releases", "--json"]).stdout)
    assert everything["total"] == len(reg.get_registry())
