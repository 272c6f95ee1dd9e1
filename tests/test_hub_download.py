"""download_sae against the fake hub over real HTTP: exact files, commit pinning, resume, progress, cancel."""

from __future__ import annotations

import json
import posixpath
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fakes import hub_repos as R
from fakes.fake_hub import FakeHub
from huggingface_hub import constants

from mistudio.catalog import service
from mistudio.errors import (
    ConflictError,
    HubAuthError,
    HubError,
    HubUnreachableError,
    JobCancelled,
    NotFoundError,
)
from mistudio.hub.browse import browse_repo
from mistudio.hub.download import download_sae, gemma_scope_path, partial_dir
from mistudio.hub.releases import browse_release, resolve_release_sae
from mistudio.saes.formats import classify_paths, inspect_sae
from mistudio.saes.registry import get_registry
from mistudio.settings import reset_settings
from mistudio.studio import Studio


def _assert_identical(hub: FakeHub, repo: str, result_dir: Path, files: list[str], revision: str = "main") -> None:
    for name in files:
        assert (result_dir / name).read_bytes() == hub.file_path(repo, name, revision).read_bytes(), name
    on_disk = sorted(p.relative_to(result_dir).as_posix() for p in result_dir.rglob("*") if p.is_file())
    assert on_disk == sorted(files)


@pytest.mark.parametrize(("repo", "path", "expected"), [
    (R.GEMMA_SCOPE_REPO, gemma_scope_path(5, "65k", 60), ["layer_5/width_65k/average_l0_60/params.npz"]),
    (R.SAELENS_REPO, "topk/deep/blocks.2.hook_resid_post",
     [f"topk/deep/blocks.2.hook_resid_post/{n}" for n in ("cfg.json", "sae_weights.safetensors",
                                                          "sparsity.safetensors")]),
    (R.SPARSIFY_REPO, "layers.1", ["config.json", "layers.1/cfg.json", "layers.1/sae.safetensors"]),
    (R.DICTIONARY_LEARNING_REPO, "resid_post_layer_3/trainer_1/ae.pt",
     ["resid_post_layer_3/trainer_1/ae.pt", "resid_post_layer_3/trainer_1/config.json"]),
])
def test_download_each_format_byte_identical(fake_hub: FakeHub, tmp_path: Path, repo: str, path: str,
                                             expected: list[str]) -> None:
    calls: list[tuple[int, int]] = []
    result = download_sae(repo, path, tmp_path / "sae", progress=lambda d, t: calls.append((d, t)),
                          endpoint=fake_hub.endpoint)
    assert result.commit_sha == fake_hub.commit_sha(repo)
    assert result.files == expected and result.local_dir == tmp_path / "sae"
    assert result.sae_dir == result.local_dir / path.removesuffix("/ae.pt")
    _assert_identical(fake_hub, repo, result.local_dir, expected)
    total = sum(fake_hub.file_path(repo, f).stat().st_size for f in expected)
    assert result.total_bytes == total
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1] == (total, total) and {t for _, t in calls} == {total}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sae"]  # staging folder gone
    resolves = [r for r in fake_hub.requests if "/resolve/" in r.path]
    assert resolves and all(f"/resolve/{result.commit_sha}/" in r.path for r in resolves)


def test_download_pins_revision_to_its_commit(fake_hub: FakeHub, tmp_path: Path) -> None:
    sha = fake_hub.commit_sha(R.SAELENS_REPO, "v1")
    result = download_sae(R.SAELENS_REPO, "blocks.0.hook_resid_pre", tmp_path / "v1", revision="v1",
                          endpoint=fake_hub.endpoint)
    assert result.commit_sha == sha
    _assert_identical(fake_hub, R.SAELENS_REPO, result.local_dir, result.files, revision="v1")
    main_weights = fake_hub.file_path(R.SAELENS_REPO, "blocks.0.hook_resid_pre/sae_weights.safetensors")
    assert (result.sae_dir / "sae_weights.safetensors").read_bytes() != main_weights.read_bytes()


def test_interrupted_download_resumes_with_range_on_next_call(fake_hub: FakeHub, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1000)  # the client writes what it got, 1000 B at a time
    name = "jumprelu/blocks.1.hook_resid_post/sae_weights.safetensors"
    size = fake_hub.file_path(R.SAELENS_REPO, name).stat().st_size
    fake_hub.inject_fault(R.SAELENS_REPO, name, drop_after=3000, fail_status=500, fail_times=1)
    dest = tmp_path / "sae"
    with pytest.raises(HubUnreachableError):
        download_sae(R.SAELENS_REPO, "jumprelu/blocks.1.hook_resid_post", dest, endpoint=fake_hub.endpoint)
    assert not dest.exists()
    partial = partial_dir(dest) / (name + ".part")
    assert partial_dir(dest) == tmp_path / ".sae.partial"
    assert partial.stat().st_size == 3000

    fake_hub.clear_log()
    calls: list[tuple[int, int]] = []
    result = download_sae(R.SAELENS_REPO, "jumprelu/blocks.1.hook_resid_post", dest,
                          progress=lambda d, t: calls.append((d, t)), endpoint=fake_hub.endpoint)
    _assert_identical(fake_hub, R.SAELENS_REPO, dest, result.files)
    gets = [r for r in fake_hub.requests if r.path.endswith(name) and r.method == "GET"]
    assert [(r.range, r.status, r.bytes_sent) for r in gets] == [("bytes=3000-", 206, size - 3000)]
    assert calls[0][0] >= 3000 and calls[-1] == (result.total_bytes, result.total_bytes)


def test_dropped_connection_is_resumed_within_the_call(fake_hub: FakeHub, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1000)
    name = "layer_0/width_16k/average_l0_22/params.npz"
    fake_hub.inject_fault(R.GEMMA_SCOPE_REPO, name, drop_after=10_000)
    result = download_sae(R.GEMMA_SCOPE_REPO, name, tmp_path / "g", endpoint=fake_hub.endpoint)
    _assert_identical(fake_hub, R.GEMMA_SCOPE_REPO, result.local_dir, [name])
    gets = [(r.range, r.status) for r in fake_hub.requests if r.path.endswith(name) and r.method == "GET"]
    assert gets == [(None, 200), ("bytes=10000-", 206)]


def test_cancel_stops_between_files_and_leaves_no_finished_sae(fake_hub: FakeHub, tmp_path: Path) -> None:
    folder = "blocks.0.hook_resid_pre"
    first = fake_hub.file_path(R.SAELENS_REPO, f"{folder}/cfg.json").stat().st_size
    done = [0]

    def progress(d: int, _t: int) -> None:
        done[0] = d

    dest = tmp_path / "sae"
    with pytest.raises(JobCancelled):
        download_sae(R.SAELENS_REPO, folder, dest, progress=progress, should_cancel=lambda: done[0] >= first,
                     endpoint=fake_hub.endpoint)
    assert not dest.exists()
    staged = tmp_path / ".sae.partial" / folder
    assert not (staged / "sae_weights.safetensors").exists()
    assert not [r for r in fake_hub.requests if r.path.endswith("sae_weights.safetensors")]

    fake_hub.clear_log()
    result = download_sae(R.SAELENS_REPO, folder, dest, endpoint=fake_hub.endpoint)
    _assert_identical(fake_hub, R.SAELENS_REPO, dest, result.files)
    assert not [r for r in fake_hub.requests if r.path.endswith("cfg.json")]  # kept from the first call


def test_download_errors(fake_hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(HubError, match="'nobody/nothing' not found"):
        download_sae("nobody/nothing", "x", tmp_path / "a", endpoint=fake_hub.endpoint)
    with pytest.raises(HubError, match="revision 'nope' not found"):
        download_sae(R.SAELENS_REPO, "blocks.0.hook_resid_pre", tmp_path / "a", revision="nope",
                     endpoint=fake_hub.endpoint)
    with pytest.raises(NotFoundError, match="SAEs there include: jumprelu/blocks.1.hook_resid_post"):
        download_sae(R.SAELENS_REPO, "jumprelu", tmp_path / "a", endpoint=fake_hub.endpoint)
    with pytest.raises(HubAuthError, match="HF_TOKEN"):
        download_sae(R.PRIVATE_REPO, "blocks.0.hook_resid_pre", tmp_path / "a", endpoint=fake_hub.endpoint)
    result = download_sae(R.PRIVATE_REPO, "blocks.0.hook_resid_pre", tmp_path / "a", token=R.PRIVATE_TOKEN,
                          endpoint=fake_hub.endpoint)
    _assert_identical(fake_hub, R.PRIVATE_REPO, result.local_dir, result.files)
    with pytest.raises(ConflictError, match="not empty"):
        download_sae(R.PRIVATE_REPO, "blocks.0.hook_resid_pre", tmp_path / "a", token=R.PRIVATE_TOKEN,
                     endpoint=fake_hub.endpoint)


@pytest.mark.parametrize("repo", [R.GEMMA_SCOPE_REPO, R.SAELENS_REPO, R.SPARSIFY_REPO, R.DICTIONARY_LEARNING_REPO])
def test_browse_preview_matches_local_inspection_after_download(fake_hub: FakeHub, tmp_path: Path,
                                                                repo: str) -> None:
    listing = browse_repo(repo, endpoint=fake_hub.endpoint)
    for i, entry in enumerate(listing.saes[:3]):
        result = download_sae(repo, entry.path, tmp_path / str(i), revision=listing.commit_sha,
                              endpoint=fake_hub.endpoint)
        assert result.total_bytes == entry.download_bytes
        local = inspect_sae(result.sae_dir, {"repo_id": repo, "path_in_repo": entry.path})
        assert (local.format, local.d_in, local.d_sae, local.architecture) == (
            entry.format, entry.d_in, entry.d_sae, entry.architecture)
        if entry.format != "dictionary_learning":  # its dtype is an estimate (ae.pt is a pickle)
            assert local.dtype == entry.dtype


def test_cancel_mid_file_keeps_the_part_for_resume(hub_root: Path, fake_hub: FakeHub, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1000)
    name = "layer_12/width_65k/average_l0_18/params.npz"
    size = fake_hub.file_path(R.GEMMA_SCOPE_REPO, name).stat().st_size
    dest, done = tmp_path / "g", [0]
    # the slow hub sends 64 KiB, then pauses: the cancel lands mid-file
    with FakeHub(hub_root, chunk_delay=0.3) as slow, pytest.raises(JobCancelled):
        download_sae(R.GEMMA_SCOPE_REPO, name, dest, progress=lambda d, _t: done.__setitem__(0, d),
                     should_cancel=lambda: done[0] > 0, endpoint=slow.endpoint)
    part = tmp_path / ".g.partial" / (name + ".part")
    assert 0 < part.stat().st_size < size and not dest.exists()
    kept = part.stat().st_size
    result = download_sae(R.GEMMA_SCOPE_REPO, name, dest, endpoint=fake_hub.endpoint)
    _assert_identical(fake_hub, R.GEMMA_SCOPE_REPO, result.local_dir, [name])
    assert [r.range for r in fake_hub.requests if r.path.endswith(name)] == [f"bytes={kept}-"]


# ---- SAELens releases: browse and download by release + SAE id, registry data on the catalogued config ----------
_RELEASE_CASES = ("saelens-pre6-center-writing-weights", "saelens-norm-scaling-factor", "mwhanna_transcoder-qwen3",
                  "mntss_clt_layer_transcoder-gemma2")


@pytest.fixture(scope="module")
def release_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fake repos of real releases: gpt2-small-res-jb (config_overrides), gpt2-small-mlp-tm (norm_scaling_factor
    with normalize_activations expected_average_only_in), and two whose registry paths are a file
    (`layer_0.safetensors`) and a file stem (`0`: `W_enc_0.safetensors` + `W_dec_0.safetensors`)."""
    from fakes.registry_repos import CASES, build_registry_repos

    root = tmp_path_factory.mktemp("release-hub")
    build_registry_repos(root, tuple(c for c in CASES if c.case_id in _RELEASE_CASES))
    return root


@pytest.fixture
def release_hub(release_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """The release repos served as the Hub, for miStudio (HF_ENDPOINT) and for SAELens (huggingface_hub's
    own endpoint constant, with its cache in the test's folder)."""
    from huggingface_hub import constants as hf_constants

    for var in ("HF_TOKEN", "HF_HUB_OFFLINE", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with FakeHub(release_root) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setattr(hf_constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        reset_settings()
        yield hub
    reset_settings()


def _saelens_sae(release: str, sae_id: str) -> Any:
    """SAELens's own `SAE.from_pretrained` (which applies the registry's overrides and scaling factor)."""
    from sae_lens import SAE as SAELensSAE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SAELensSAE.from_pretrained(release, sae_id, device="cpu")


def test_browse_release_merges_registry_and_file_data(release_hub: FakeHub) -> None:
    listing = browse_release("gpt2-small-res-jb")
    assert (listing.repo_id, listing.model, listing.family) == ("jbloom/GPT2-Small-SAEs-Reformatted",
                                                                 "gpt2-small", "saelens")
    assert listing.config_overrides == {"model_from_pretrained_kwargs": {"center_writing_weights": True}}
    assert listing.commit_sha == release_hub.commit_sha(listing.repo_id)
    assert len(listing.saes) == 13  # every SAE the registry lists; the fake repo holds the first only
    first = listing.saes[0]
    assert (first.id, first.path, first.l0, first.variance_explained, first.neuronpedia) == (
        "blocks.0.hook_resid_pre", "blocks.0.hook_resid_pre", 10.0, 0.999, "gpt2-small/0-res-jb")
    assert first.hub is not None and (first.hub.format, first.hub.d_in, first.hub.d_sae) == ("saelens", 64, 128)
    assert [s.hub for s in listing.saes[1:]] == [None] * 12
    with pytest.raises(NotFoundError, match="gpt2-small-res-jb"):
        browse_release("gpt2-small-res-j")


@pytest.mark.parametrize(("release", "sae_id", "by_repo"), [
    ("gpt2-small-res-jb", "blocks.0.hook_resid_pre", False),
    ("gpt2-small-res-jb", "blocks.0.hook_resid_pre", True),
    ("gpt2-small-mlp-tm", "blocks.0.hook_mlp_out", False),
])
def test_release_download_applies_the_registry_like_saelens(release_hub: FakeHub, studio: Studio, release: str,
                                                            sae_id: str, by_repo: bool) -> None:
    found, entry, data = resolve_release_sae(release, sae_id)
    if by_repo:  # a plain repo download of a path that a release lists gets the same registry data
        started = service.start_hf_download(studio, found.repo_id, entry.path)
    else:
        started = service.start_release_download(studio, release, sae_id)
    job = studio.runner.run_inline(started.job_id)
    assert job.status == "completed", job.error
    with studio.sessions() as s:
        record = service.get_record(s, started.sae_id)
        cfg = record.metadata_json["config"]
        assert record.name == (f"{found.repo_id}/{entry.path}" if by_repo else f"{release}/{sae_id}")
        assert (record.repo_id, record.path_in_repo, record.status) == (found.repo_id, entry.path, "ready")
    assert cfg["extra"]["registry"] == data
    assert data["release"] == release and data["sae_id"] == sae_id and data["repo_id"] == found.repo_id
    assert data["sae_lens_version"] == get_registry().sae_lens_version
    for key, value in found.config_overrides.items():
        assert cfg[key] == value, key
    assert cfg["model_from_pretrained_kwargs"] == {"center_writing_weights": True}
    assert cfg["neuronpedia_id"] == entry.neuronpedia
    if entry.norm_scaling_factor is not None:
        assert cfg["extra"]["norm_scaling_factor"] == entry.norm_scaling_factor
        assert cfg["normalize_activations"] == "expected_average_only_in"
    else:
        assert "norm_scaling_factor" not in cfg["extra"]

    sae = service.load_sae_for(studio, started.sae_id)
    assert sae.cfg.model_from_pretrained_kwargs == {"center_writing_weights": True}
    assert sae.cfg.extra["registry"] == data
    oracle = _saelens_sae(release, sae_id)
    meta = oracle.cfg.metadata
    assert sae.cfg.model_from_pretrained_kwargs == meta.model_from_pretrained_kwargs
    assert (sae.cfg.neuronpedia_id, sae.cfg.dataset_path) == (meta.neuronpedia_id, meta.dataset_path)
    assert sae.cfg.normalize_activations == oracle.cfg.normalize_activations  # "none" once the factor is folded
    x = torch.randn(32, sae.cfg.d_in, generator=torch.Generator().manual_seed(0)) * 3
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), oracle.encode(x), rtol=1e-5, atol=1e-5)
    assert service.sae_statistics(studio, started.sae_id).l0 == entry.l0


@pytest.mark.parametrize(("release", "sae_id"), [("mwhanna-qwen3-0.6b-transcoders-lowl0", "layer_0"),
                                                  ("mntss-gemma-2-2b-2.5m-clt-as-per-layer", "layer_0")])
def test_release_download_of_a_file_level_sae(release_hub: FakeHub, studio: Studio, release: str,
                                              sae_id: str) -> None:
    found, entry, data = resolve_release_sae(release, sae_id)
    listing = browse_release(release)
    browsed = next(s for s in listing.saes if s.id == sae_id)
    assert browsed.hub is not None and browsed.hub.error is None
    started = service.start_release_download(studio, release, sae_id)
    job = studio.runner.run_inline(started.job_id)
    assert job.status == "completed", job.error
    with studio.sessions() as s:
        files = sorted(p.name for p in service.sae_dir(studio, service.get_record(s, started.sae_id)).iterdir())
    assert files == sorted(posixpath.basename(f.path) for f in browsed.hub.files)  # exactly this SAE's files
    sae = service.load_sae_for(studio, started.sae_id)
    assert sae.cfg.extra["registry"] == data
    oracle = _saelens_sae(release, sae_id)
    x = torch.randn(16, sae.cfg.d_in, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), oracle.encode(x), rtol=1e-5, atol=1e-5)


def test_release_download_errors(release_hub: FakeHub, studio: Studio) -> None:
    with pytest.raises(NotFoundError, match="no SAELens release named"):
        service.start_release_download(studio, "no-such-release", "x")
    with pytest.raises(NotFoundError, match=r"has no SAE 'blocks\.99"):
        service.start_release_download(studio, "gpt2-small-res-jb", "blocks.99.hook_resid_pre")
    service.start_release_download(studio, "gpt2-small-res-jb", "blocks.0.hook_resid_pre")
    with pytest.raises(ConflictError, match="already in the catalog"):
        service.start_hf_download(studio, "jbloom/GPT2-Small-SAEs-Reformatted", "blocks.0.hook_resid_pre")


def test_download_finds_a_file_level_sae_by_its_path_or_file() -> None:
    from mistudio.hub.download import _find_sae
    from mistudio.hub.layout import sae_files

    paths = ["config.yaml", "layer_0.safetensors", "layer_1.safetensors", "README.md"]
    found = [(p, f) for p, f in classify_paths(paths) if "layer_1.safetensors" in sae_files(p, f, paths)
             and "layer_0.safetensors" not in sae_files(p, f, paths)]
    if not found:
        pytest.skip("classify_paths does not list file-level SAEs (one SAE per file in a shared folder)")
    for wanted in ("layer_1.safetensors", found[0][0]):
        assert _find_sae("o/r", "0" * 40, wanted, paths) == found[0]


def test_cli_browse_and_download_a_release(release_hub: FakeHub, isolated_home: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mistudio.cli import common
    from mistudio.cli.main import app

    monkeypatch.setattr(common.console, "width", 200)
    runner = CliRunner()
    browsed = runner.invoke(app, ["sae", "browse", "gpt2-small-res-jb", "--json"])
    assert browsed.exit_code == 0, browsed.output
    listing = json.loads(browsed.stdout)
    assert listing["repo_id"] == "jbloom/GPT2-Small-SAEs-Reformatted" and listing["saes"][0]["l0"] == 10.0
    table = runner.invoke(app, ["sae", "browse", "gpt2-small-res-jb"], terminal_width=220)
    assert table.exit_code == 0 and "gpt2-small/0-res-jb" in table.output and "missing" in table.output
    repo = runner.invoke(app, ["sae", "browse", "jbloom/GPT2-Small-SAEs-Reformatted", "--json"])
    assert json.loads(repo.stdout)["registry"]["blocks.0.hook_resid_pre"] == {
        "release": "gpt2-small-res-jb", "sae_id": "blocks.0.hook_resid_pre", "l0": 10.0,
        "variance_explained": 0.999, "neuronpedia": "gpt2-small/0-res-jb"}

    done = runner.invoke(app, ["sae", "download", "gpt2-small-res-jb", "--sae-id", "blocks.0.hook_resid_pre",
                               "--json"])
    assert done.exit_code == 0, done.output
    sae = json.loads(done.stdout)
    assert (sae["name"], sae["status"], sae["model_name"]) == ("gpt2-small-res-jb/blocks.0.hook_resid_pre",
                                                                "ready", "gpt2-small")
    missing_id = runner.invoke(app, ["sae", "download", "gpt2-small-res-jb"])
    assert missing_id.exit_code == 1 and "--sae-id" in missing_id.output
    unknown = runner.invoke(app, ["sae", "browse", "gpt2-small-res-j"])
    assert unknown.exit_code == 1 and "did you mean gpt2-small-res-jb" in unknown.output


def test_rest_release_search_browse_and_download(release_hub: FakeHub, studio: Studio) -> None:
    from fastapi.testclient import TestClient

    from mistudio.api.app import create_app
    from mistudio.hub.releases import search_releases

    with TestClient(create_app(studio, start_worker=False)) as client:
        found = client.get("/api/v1/hub/releases", params={"query": "gpt2 res jb", "limit": 2}).json()
        expected = search_releases("gpt2 res jb", limit=2)
        assert found == expected.model_dump(mode="json") and found["items"][0]["name"] == "gpt2-small-res-jb"
        assert found["total"] >= 2 and len(found["items"]) == 2
        by_repo = client.get("/api/v1/hub/releases", params={"repo_id": "jbloom/GPT2-Small-SAEs-Reformatted"})
        assert [r["name"] for r in by_repo.json()["items"]] == ["gpt2-small-res-jb"]

        info = client.get("/api/v1/hub/releases/gpt2-small-res-jb").json()
        assert info == get_registry().release("gpt2-small-res-jb").model_dump(mode="json")
        assert client.get("/api/v1/hub/releases/nope").status_code == 404

        saes = client.get("/api/v1/hub/releases/gpt2-small-res-jb/saes").json()
        assert saes == browse_release("gpt2-small-res-jb").model_dump(mode="json")

        res = client.post("/api/v1/hub/releases/gpt2-small-res-jb/download",
                          json={"sae_id": "blocks.0.hook_resid_pre"})
        assert res.status_code == 202, res.text
        job = studio.runner.run_inline(res.json()["job_id"])
        assert job.status == "completed", job.error
        sae = client.get(f"/api/v1/saes/{res.json()['sae_id']}/config").json()
        assert sae["config"]["neuronpedia_id"] == "gpt2-small/0-res-jb"
        assert sae["config"]["extra"]["registry"]["release"] == "gpt2-small-res-jb"
        bad = client.post("/api/v1/hub/releases/gpt2-small-res-jb/download", json={"sae_id": "nope"})
        assert bad.status_code == 404 and "has no SAE 'nope'" in bad.json()["error"]["message"]
