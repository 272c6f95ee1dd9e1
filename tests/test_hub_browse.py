"""browse_repo against the fake hub over real HTTP: SAE discovery, header-only shapes, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import hub_repos as R
from fakes.fake_hub import FakeHub
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from safetensors import safe_open
from safetensors.numpy import save_file

import mistudio
from mistudio.errors import HubAuthError, HubError, HubUnreachableError, NotFoundError
from mistudio.hub.browse import browse_repo
from mistudio.hub.download import gemma_scope_path, resolve_gemma_scope
from mistudio.settings import reset_settings


def _source(hub: FakeHub, repo: str, path: str, revision: str = "main") -> Path:
    return hub.file_path(repo, path, revision)


def test_fake_hub_serves_huggingface_hub_client(fake_hub: FakeHub, tmp_path: Path) -> None:
    api = HfApi(endpoint=fake_hub.endpoint)
    files = api.list_repo_files(R.SAELENS_REPO)
    assert "jumprelu/blocks.1.hook_resid_post/cfg.json" in files
    tree = {e.path for e in api.list_repo_tree(R.SAELENS_REPO, path_in_repo="topk", recursive=True)}
    assert "topk/deep/blocks.2.hook_resid_post/sae_weights.safetensors" in tree
    one = hf_hub_download(R.SAELENS_REPO, "blocks.0.hook_resid_pre/cfg.json", local_dir=tmp_path / "a",
                          endpoint=fake_hub.endpoint)
    assert Path(one).read_bytes() == _source(fake_hub, R.SAELENS_REPO, "blocks.0.hook_resid_pre/cfg.json").read_bytes()
    snap = Path(snapshot_download(R.GEMMA_SCOPE_REPO, allow_patterns=["layer_5/width_65k/*/*"],
                                  local_dir=tmp_path / "b", endpoint=fake_hub.endpoint))
    got = sorted(p.relative_to(snap).as_posix() for p in snap.rglob("params.npz"))
    assert got == ["layer_5/width_65k/average_l0_18/params.npz", "layer_5/width_65k/average_l0_60/params.npz"]


def test_browse_gemma_scope_reads_npz_headers_without_downloading(fake_hub: FakeHub) -> None:
    listing = browse_repo(R.GEMMA_SCOPE_REPO, endpoint=fake_hub.endpoint)
    assert listing.commit_sha == fake_hub.commit_sha(R.GEMMA_SCOPE_REPO)
    n_leaves = len(R.GEMMA_SCOPE_LAYERS) * sum(len(v) for v in R.GEMMA_SCOPE_L0S.values())
    assert len(listing.saes) == n_leaves and all(s.format == "gemma_scope" for s in listing.saes)

    # layer -> width -> L0 tree, numerically sorted, with d_sae read from the headers
    assert [layer.layer for layer in listing.gemma_scope] == list(R.GEMMA_SCOPE_LAYERS)
    for layer in listing.gemma_scope:
        assert [w.width for w in layer.widths] == ["16k", "65k"]
        for width in layer.widths:
            assert width.d_sae == R.GEMMA_SCOPE_WIDTHS[f"width_{width.width}"]
            assert [c.l0 for c in width.l0s] == sorted(R.GEMMA_SCOPE_L0S[f"width_{width.width}"])

    path = gemma_scope_path(12, "16k", 41)
    entry = listing.sae(path)
    with np.load(_source(fake_hub, R.GEMMA_SCOPE_REPO, f"{path}/params.npz")) as oracle:
        assert entry.tensors == {k: list(oracle[k].shape) for k in oracle.files}
        n_params = sum(oracle[k].size for k in oracle.files)
    assert (entry.d_in, entry.d_sae) == (R.GEMMA_SCOPE_D_IN, 256)
    assert (entry.layer, entry.width, entry.l0, entry.architecture, entry.dtype) == (12, "16k", 41, "jumprelu",
                                                                                      "float32")
    assert entry.memory is not None and entry.memory.n_params == n_params
    assert entry.memory.bytes_fp32 == entry.memory.bytes_at_dtype == 4 * n_params
    assert entry.memory.bytes_fp16 == 2 * n_params
    npz_size = _source(fake_hub, R.GEMMA_SCOPE_REPO, f"{path}/params.npz").stat().st_size
    assert entry.download_bytes == npz_size and entry.files[0].path == f"{path}/params.npz"

    # only Range requests touched params.npz, and they read well under the file size
    npz_gets = [r for r in fake_hub.requests if r.path.endswith(f"{path}/params.npz") and r.method == "GET"]
    assert npz_gets and all(r.range is not None and r.status == 206 for r in npz_gets)
    assert sum(r.bytes_sent for r in npz_gets) < npz_size / 2
    assert json.loads(listing.model_dump_json())["commit_sha"] == listing.commit_sha


def test_resolve_gemma_scope_lists_valid_choices(fake_hub: FakeHub) -> None:
    listing = browse_repo(R.GEMMA_SCOPE_REPO, endpoint=fake_hub.endpoint, path_prefix="layer_5")
    assert {s.layer for s in listing.saes} == {5}
    assert resolve_gemma_scope(listing, 5, 65536, 60) == "layer_5/width_65k/average_l0_60"
    with pytest.raises(NotFoundError, match="L0 choices: 22, 41, 82"):
        resolve_gemma_scope(listing, 5, "width_16k", 50)
    with pytest.raises(NotFoundError, match="widths: 16k, 65k"):
        resolve_gemma_scope(listing, 5, "1m", 22)
    with pytest.raises(NotFoundError, match="layers available: 5"):
        resolve_gemma_scope(listing, 7, "16k", 22)


def test_browse_saelens_nested_release(fake_hub: FakeHub) -> None:
    listing = browse_repo(R.SAELENS_REPO, endpoint=fake_hub.endpoint)
    by_path = {s.path: s for s in listing.saes}
    assert set(by_path) == {"blocks.0.hook_resid_pre", "jumprelu/blocks.1.hook_resid_post",
                            "topk/deep/blocks.2.hook_resid_post"}
    for path, entry in by_path.items():
        cfg = json.loads(_source(fake_hub, R.SAELENS_REPO, f"{path}/cfg.json").read_text())
        assert entry.config == cfg and entry.format == "saelens"
        with safe_open(_source(fake_hub, R.SAELENS_REPO, f"{path}/sae_weights.safetensors"), "np") as fh:
            assert entry.tensors == {k: list(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
        assert (entry.d_in, entry.d_sae) == (cfg["d_in"], cfg["d_sae"])
        assert entry.architecture == cfg["architecture"] and entry.dtype == "float32"
        assert entry.hook_name == cfg["metadata"]["hook_name"] and entry.model_name == "gpt2"
        names = sorted(f.path.rsplit("/", 1)[1] for f in entry.files)
        assert names == ["cfg.json", "sae_weights.safetensors", "sparsity.safetensors"]
        assert entry.download_bytes == sum(_source(fake_hub, R.SAELENS_REPO, f.path).stat().st_size
                                           for f in entry.files)
    assert by_path["topk/deep/blocks.2.hook_resid_post"].k == 4
    assert by_path["jumprelu/blocks.1.hook_resid_post"].layer == 1
    weights = [r for r in fake_hub.requests if r.path.endswith("sae_weights.safetensors") and r.method == "GET"]
    assert all(r.range is not None for r in weights)


def test_browse_sparsify_dictionary_learning_and_plain(fake_hub: FakeHub) -> None:
    sparsify = browse_repo(R.SPARSIFY_REPO, endpoint=fake_hub.endpoint)
    assert [s.path for s in sparsify.saes] == ["layers.0", "layers.1"]
    layer1 = sparsify.saes[1]
    assert (layer1.format, layer1.d_in, layer1.d_sae, layer1.k, layer1.layer) == ("sparsify", 16, 128, 8, 1)
    assert (layer1.architecture, layer1.dtype, layer1.model_name) == ("topk", "bfloat16", "EleutherAI/pythia-70m")
    assert layer1.memory is not None and layer1.memory.bytes_at_dtype == layer1.memory.bytes_fp16
    assert [f.path for f in layer1.files] == ["config.json", "layers.1/cfg.json", "layers.1/sae.safetensors"]

    dl = browse_repo(R.DICTIONARY_LEARNING_REPO, endpoint=fake_hub.endpoint)
    assert [(s.path, s.format, s.d_in, s.d_sae, s.architecture, s.layer) for s in dl.saes] == [
        (f"resid_post_layer_3/trainer_{i}", "dictionary_learning", 16, 64, "standard", 3) for i in (0, 1)]

    plain = browse_repo(R.PLAIN_REPO, endpoint=fake_hub.endpoint)
    assert plain.saes == [] and plain.n_files == 2 and plain.gemma_scope == []


def test_browse_revision_pinning(fake_hub: FakeHub) -> None:
    v1 = browse_repo(R.SAELENS_REPO, revision="v1", endpoint=fake_hub.endpoint)
    assert v1.commit_sha == fake_hub.commit_sha(R.SAELENS_REPO, "v1") != fake_hub.commit_sha(R.SAELENS_REPO)
    assert [s.path for s in v1.saes] == ["blocks.0.hook_resid_pre"]
    by_sha = browse_repo(R.SAELENS_REPO, revision=v1.commit_sha, endpoint=fake_hub.endpoint)
    assert by_sha.commit_sha == v1.commit_sha and [s.path for s in by_sha.saes] == ["blocks.0.hook_resid_pre"]


def test_browse_errors_are_actionable(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(HubError, match=r"repository 'nobody/nothing' not found on http://127\.0\.0\.1.*check the id"):
        browse_repo("nobody/nothing")  # endpoint from HF_ENDPOINT
    with pytest.raises(HubError, match="revision 'no-such-branch' not found"):
        browse_repo(R.SAELENS_REPO, revision="no-such-branch")
    with pytest.raises(HubAuthError, match="set HF_TOKEN or pass --token"):
        browse_repo(R.PRIVATE_REPO)
    with pytest.raises(HubAuthError, match="token given has no access"):
        browse_repo(R.PRIVATE_REPO, token="hf_wrong")
    assert [s.path for s in browse_repo(R.PRIVATE_REPO, token=R.PRIVATE_TOKEN).saes] == ["blocks.0.hook_resid_pre"]
    assert any(r.authorization == f"Bearer {R.PRIVATE_TOKEN}" for r in fake_hub.requests)
    monkeypatch.setenv("HF_TOKEN", R.PRIVATE_TOKEN)
    reset_settings()
    assert browse_repo(R.PRIVATE_REPO).saes[0].d_sae == 32


def test_browse_unreachable_and_offline(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = FakeHub(fake_hub.state.root)
    endpoint = dead.endpoint
    dead.stop()  # the port is closed now
    with pytest.raises(HubUnreachableError, match="cannot reach the Hub"):
        browse_repo(R.SAELENS_REPO, endpoint=endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reset_settings()
    with pytest.raises(HubUnreachableError, match="HF_HUB_OFFLINE"):
        browse_repo(R.SAELENS_REPO)


def test_fake_hub_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(mistudio.__file__).parents[1]),
                                                        str(Path(__file__).parent),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "fakes.fake_hub", "--root", str(tmp_path),
                             "--port", "0", "--populate"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip().rsplit(" at ", 1)[1]
        listing = browse_repo(R.SPARSIFY_REPO, endpoint=endpoint)
        assert [s.path for s in listing.saes] == ["layers.0", "layers.1"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_browse_reports_a_corrupt_sae_without_failing(tmp_path: Path) -> None:
    base = tmp_path / "someone" / "broken" / "main"
    for folder in ("good", "bad", "truncated"):
        (base / folder).mkdir(parents=True)
        (base / folder / "cfg.json").write_text("{}")
        save_file({"W_enc": np.zeros((4, 8), np.float32)}, str(base / folder / "sae_weights.safetensors"))
    (base / "bad" / "cfg.json").write_text("{not json")
    (base / "truncated" / "sae_weights.safetensors").write_bytes(b"\xff" * 12)
    R.write_npz(base / "npz" / "params.npz", {"W_enc": np.zeros((4, 8), np.float32)})
    (base / "npz" / "params.npz").write_bytes(b"PK-truncated")
    with FakeHub(tmp_path) as hub:
        listing = browse_repo("someone/broken", endpoint=hub.endpoint)
        with pytest.raises(NotFoundError, match="SAEs there include: bad, good, npz, truncated"):
            listing.sae("nope")
    errors = {s.path: s.error or "" for s in listing.saes}
    assert "not valid JSON" in errors["bad"] and "not a readable .npz" in errors["npz"]
    assert "no readable safetensors header" in errors["truncated"] and errors["good"] == ""
    assert listing.sae("good").tensors == {"W_enc": [4, 8]} and listing.sae("good").d_sae == 8
