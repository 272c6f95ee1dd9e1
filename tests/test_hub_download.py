"""download_sae against the fake hub over real HTTP: exact files, commit pinning, resume, progress, cancel."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import hub_repos as R
from fakes.fake_hub import FakeHub
from huggingface_hub import constants

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
from mistudio.saes.formats import inspect_sae


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
