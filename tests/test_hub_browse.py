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
from sae_factories import (
    write_connor_hook_z,
    write_gemma_scope_2,
    write_goodfire,
    write_llama_scope,
    write_mntss_clt,
    write_mwhanna,
    write_qwen_scope,
    write_temporal,
)
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
        (base / folder / "cfg.json").write_text('{"d_in": 4, "d_sae": 8}')
        save_file({"W_enc": np.zeros((4, 8), np.float32), "W_dec": np.zeros((8, 4), np.float32)},
                  str(base / folder / "sae_weights.safetensors"))
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
    assert listing.sae("good").tensors == {"W_enc": [4, 8], "W_dec": [8, 4]} and listing.sae("good").d_sae == 8


# ----- the SAELens registry's families over the Hub: one inspection per format, shared with local detection -----


def _registry_hub(tmp_path: Path) -> Path:
    """A fake-hub root holding one small repo of each registry family, laid out as the real repos are."""
    def repo(repo_id: str) -> Path:
        path = tmp_path / repo_id / "main"
        path.mkdir(parents=True)
        return path

    gs2 = repo("google/gemma-scope-2-1b-pt")
    for site, layer, l0, affine, config in [("resid_post", 3, "small", False, True), ("resid_post", 3, "big", False, True),
                                             ("resid_post", 3, "medium", False, False), ("resid_post", 1, "small", False, True),
                                             ("transcoder_all", 2, "big", True, True), ("transcoder_all", 2, "big", False, True)]:
        write_gemma_scope_2(gs2, site, layer, l0=l0, affine=affine, config=config)
    write_qwen_scope(repo("Qwen/SAE-Res-Qwen3-1.7B-Base-W1K-L0_50"), layers=(0, 1, 2))
    write_mwhanna(repo("mwhanna/qwen3-4b-transcoders"), layers=(0, 1))
    write_mntss_clt(repo("mntss/clt-gemma-2-2b-2.5M"), n_layers=2)
    llama = repo("fnlp/Llama3_1-8B-Base-LXR-8x")
    write_llama_scope(llama, layer=3)
    (llama / "Llama3_1-8B-Base-L3R-8x" / "checkpoints" / "step_10.safetensors").write_bytes(b"old checkpoint")
    write_connor_hook_z(repo("ckkissane/attn-saes-gpt2-small-all-layers"), layers=(0,))
    write_goodfire(repo("Goodfire/Llama-3.1-8B-Instruct-SAE-l19"))
    write_temporal(repo("canrager/temporalSAEs"))
    return tmp_path


def test_browse_gemma_scope_2_tree_and_transcoders(tmp_path: Path) -> None:
    root = _registry_hub(tmp_path)
    repo_id = "google/gemma-scope-2-1b-pt"
    with FakeHub(root) as hub:
        listing = browse_repo(repo_id, endpoint=hub.endpoint)
        requests = list(hub.requests)
    assert {s.format for s in listing.saes} == {"gemma_scope_2"} and len(listing.saes) == 6
    res = listing.sae("resid_post/layer_3_width_16k_l0_small")
    raw = json.loads((root / repo_id / "main" / res.path / "config.json").read_text())
    assert res.config == raw and (res.d_in, res.d_sae, res.architecture, res.layer) == (32, 64, "jumprelu", 3)
    assert (res.hook_name, res.hf_hook_name, res.model_name) == ("blocks.3.hook_resid_post", "model.layers.3.output",
                                                                 "google/gemma-3-1b-pt")
    assert (res.site, res.width, res.l0_label, res.shapes_known) == ("resid_post", "16k", "small", True)
    assert res.tensors["w_enc"] == [32, 64] and res.memory is not None
    assert [f.path.rsplit("/", 1)[1] for f in res.files] == ["config.json", "params.safetensors"]
    affine = listing.sae("transcoder_all/layer_2_width_16k_l0_big_affine")
    assert (affine.d_out, affine.hook_name, affine.hook_name_out) == (32, "blocks.2.hook_mlp_in",
                                                                      "blocks.2.hook_mlp_out")
    assert affine.hf_hook_name_out == "model.layers.2.post_feedforward_layernorm.output"
    assert "affine_skip_connection" in affine.tensors
    # one picker tree, per site: layer → width → L0 labels small → big (affine after)
    tree = [(g.site, g.layer, [(w.width, w.d_sae, [c.label for c in w.l0s]) for w in g.widths])
            for g in listing.gemma_scope]
    assert tree == [("resid_post", 1, [("16k", 64, ["small"])]),
                    ("resid_post", 3, [("16k", 64, ["small", "medium", "big"])]),
                    ("transcoder_all", 2, [("16k", 64, ["big", "big_affine"])])]
    weights = [r for r in requests if r.path.endswith("params.safetensors") and r.method == "GET"]
    assert weights and all(r.range is not None for r in weights)


def test_browse_file_level_families(tmp_path: Path) -> None:
    root = _registry_hub(tmp_path)
    with FakeHub(root) as hub:
        listings = {repo: browse_repo(repo, endpoint=hub.endpoint) for repo in (
            "Qwen/SAE-Res-Qwen3-1.7B-Base-W1K-L0_50", "mwhanna/qwen3-4b-transcoders", "mntss/clt-gemma-2-2b-2.5M",
            "fnlp/Llama3_1-8B-Base-LXR-8x", "ckkissane/attn-saes-gpt2-small-all-layers",
            "Goodfire/Llama-3.1-8B-Instruct-SAE-l19", "canrager/temporalSAEs")}
        requests = list(hub.requests)

    qwen = listings["Qwen/SAE-Res-Qwen3-1.7B-Base-W1K-L0_50"]
    assert [(s.path, s.format, s.layer) for s in qwen.saes] == [(f"layer{i}.sae.pt", "qwen_scope", i) for i in range(3)]
    q1 = qwen.sae("layer1.sae.pt")
    assert (q1.d_in, q1.d_sae, q1.k, q1.architecture, q1.model_name) == (2048, 1024, 50, "topk", "Qwen/Qwen3-1.7B-Base")
    assert not q1.shapes_known and q1.tensors == {} and [f.path for f in q1.files] == ["layer1.sae.pt"]
    assert q1.memory is not None and q1.memory.n_params == 2 * 2048 * 1024 + 2048 + 1024
    assert not any(r.path.endswith(".sae.pt") for r in requests)  # pickles are never fetched by a listing

    mw = listings["mwhanna/qwen3-4b-transcoders"]
    assert [s.path for s in mw.saes] == ["layer_0.safetensors", "layer_1.safetensors"]
    m1 = mw.sae("layer_1.safetensors")
    assert [f.path for f in m1.files] == ["config.yaml", "layer_1.safetensors", "wandb-config.yaml"]
    assert (m1.d_in, m1.d_sae, m1.d_out, m1.hook_name, m1.hook_name_out, m1.model_name) == (
        16, 64, 16, "blocks.1.mlp.hook_in", "blocks.1.hook_mlp_out", "Qwen/Qwen3-4B")
    assert m1.tensors["W_enc"] == [64, 16] and m1.shapes_known

    clt = listings["mntss/clt-gemma-2-2b-2.5M"]
    assert [(s.path, s.layer, s.d_sae, s.hook_name) for s in clt.saes] == [
        ("0", 0, 32, "blocks.0.hook_resid_mid"), ("1", 1, 32, "blocks.1.hook_resid_mid")]
    assert [f.path for f in clt.sae("1").files] == ["W_dec_1.safetensors", "W_enc_1.safetensors", "config.yaml"]

    llama = listings["fnlp/Llama3_1-8B-Base-LXR-8x"].sae("Llama3_1-8B-Base-L3R-8x")
    assert [f.path.split("/", 1)[1] for f in llama.files] == [
        "checkpoints/final.safetensors", "hyperparams.json", "lm_config.json"]
    assert (llama.d_in, llama.d_sae, llama.hook_name, llama.architecture) == (16, 64, "blocks.3.hook_resid_post",
                                                                              "jumprelu")

    connor = listings["ckkissane/attn-saes-gpt2-small-all-layers"].saes
    assert len(connor) == 1 and connor[0].format == "connor_rob_hook_z" and not connor[0].shapes_known
    assert (connor[0].d_in, connor[0].hook_name, len(connor[0].files)) == (32, "blocks.0.attn.hook_z", 2)
    goodfire = listings["Goodfire/Llama-3.1-8B-Instruct-SAE-l19"].saes
    assert [(s.path, s.d_in, s.d_sae, s.hook_name) for s in goodfire] == [
        ("Llama-3.1-8B-Instruct-SAE-l19.pth", 4096, 65536, "blocks.19.hook_resid_post")]
    temporal = listings["canrager/temporalSAEs"].saes
    assert [(s.format, s.architecture, s.d_sae, s.layer) for s in temporal] == [("temporal", "temporal", 64, 12)]


def test_remote_and_local_inspection_agree(tmp_path: Path) -> None:
    """Each format is inspected by one function: a Hub listing and local detection of the same files agree."""
    from mistudio.saes.formats import detect_format

    root = _registry_hub(tmp_path)
    cases = [("google/gemma-scope-2-1b-pt", "transcoder_all/layer_2_width_16k_l0_big_affine"),
             ("mwhanna/qwen3-4b-transcoders", "layer_1.safetensors"), ("mntss/clt-gemma-2-2b-2.5M", "1"),
             ("fnlp/Llama3_1-8B-Base-LXR-8x", "Llama3_1-8B-Base-L3R-8x"),
             ("canrager/temporalSAEs", "gemma-2-2B/layer_12/temporal")]
    with FakeHub(root) as hub:
        for repo_id, path in cases:
            entry = browse_repo(repo_id, endpoint=hub.endpoint).sae(path)
            local = root / repo_id / "main" / path
            hints = {"repo_id": repo_id, "path_in_repo": path}
            detected = detect_format(local if local.exists() else local.parent, hints)
            cfg = detected.config
            assert (entry.format, entry.d_in, entry.d_sae, entry.d_out, entry.architecture, entry.hook_name,
                    entry.hook_name_out, entry.model_name, entry.layer) == (
                detected.format, cfg.d_in, cfg.d_sae, cfg.d_out, cfg.architecture, cfg.hook_name, cfg.hook_name_out,
                cfg.model_name, cfg.hook_layer)
            assert sorted(f.path.rsplit("/", 1)[-1] for f in entry.files) == sorted(
                f.rsplit("/", 1)[-1] for f in detected.files)
