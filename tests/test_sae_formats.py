"""Format readers and writers: round trips, SAELens as oracle, header-only detection, error messages."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch
from sae_factories import (
    ARCHITECTURES,
    formats_for,
    make_sae,
    reference_encode,
    saelens_reference,
    write_connor_hook_z,
    write_deepseek_r1,
    write_dictionary_learning,
    write_gemma_2_transcoder,
    write_gemma_scope,
    write_gemma_scope_2,
    write_goodfire,
    write_in_format,
    write_llama_scope,
    write_llama_scope_r1,
    write_mntss_clt,
    write_mwhanna,
    write_qwen_scope,
    write_saelens_v5,
    write_sparsify,
    write_temporal,
)
from safetensors.torch import save_file

from mistudio.errors import CorruptFileError, InvalidInputError, UnknownFormatError
from mistudio.saes.formats import (
    FORMAT_NAMES,
    AmbiguousSAEError,
    classify_paths,
    detect_format,
    find_saes,
    inspect_sae,
    read_detected,
    read_sae,
    read_sparsity,
    write_saelens,
)

CASES = [(arch, fmt) for arch in ARCHITECTURES for fmt in formats_for(make_sae(arch))]


@pytest.mark.parametrize(("arch", "fmt"), CASES)
def test_round_trip_every_format(arch: str, fmt: str, tmp_path: Path) -> None:
    sae = make_sae(arch, seed=5)
    folder = write_in_format(sae, fmt, tmp_path / "root")
    detected = detect_format(tmp_path / "root")
    assert detected.root == folder
    assert (detected.d_in, detected.d_sae, detected.architecture) == (16, 45, arch)
    assert detected.layer is not None
    loaded = read_sae(folder)
    x = torch.randn(6, 16)
    torch.testing.assert_close(loaded.encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loaded(x), sae(x), atol=1e-5, rtol=1e-5)


def _saelens_load(folder: Path):
    from sae_lens import SAE as LensSAE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LensSAE.load_from_disk(str(folder))


ORACLE_CASES = [(arch, "none", False) for arch in ARCHITECTURES] + [
    ("standard", "constant_norm_rescale", False),
    ("jumprelu", "layer_norm", False),
    ("gated", "expected_average_only_in", False),
    ("topk", "none", True),
    ("topk", "layer_norm", True),
]


@pytest.mark.parametrize(("arch", "normalize", "rescale"), ORACLE_CASES)
def test_saelens_output_loads_in_saelens(arch: str, normalize: str, rescale: bool, tmp_path: Path) -> None:
    sae = make_sae(arch, seed=6, normalize_activations=normalize, rescale_acts_by_decoder_norm=rescale)
    sparsity = torch.linspace(-5, -1, sae.cfg.d_sae)
    folder = write_saelens(sae, tmp_path / "out", sparsity=sparsity)
    lens = _saelens_load(folder)
    assert lens.cfg.architecture() == ("jumprelu" if arch == "batchtopk" else arch)
    assert lens.cfg.metadata.hook_name == sae.cfg.hook_name
    assert lens.cfg.metadata.model_name == sae.cfg.model_name
    x = torch.randn(4, 3, 16)
    ours, theirs = sae.encode(x), lens.encode(x)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae.decode(ours, x), lens.decode(theirs), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae(x), lens(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(read_sparsity(folder), sparsity)
    # and back: our reader restores the architecture (batchtopk included)
    assert read_sae(folder).cfg.architecture == arch


def test_v5_flat_config(tmp_path: Path) -> None:
    sae = make_sae("topk", seed=7, hook_name="blocks.6.hook_resid_pre")
    folder = write_saelens_v5(sae, tmp_path / "v5")
    detected = inspect_sae(folder)
    assert detected.config_preview["config_version"] == 5
    assert detected.architecture == "topk" and detected.config.k == sae.cfg.k
    assert detected.hook_name == "blocks.6.hook_resid_pre" and detected.layer == 6
    assert detected.config.extra["l1_coefficient"] == 5.0
    assert detected.dtype == "float32"
    # SAELens reads the same folder the same way
    x = torch.randn(5, 16)
    torch.testing.assert_close(
        read_sae(folder).encode(x), _saelens_load(folder).encode(x), atol=1e-5, rtol=1e-5
    )


def test_v6_config_layer_from_hook_name_and_explicit_layer(tmp_path: Path) -> None:
    sae = make_sae("standard", hook_name="blocks.9.hook_mlp_out")
    folder = write_saelens(sae, tmp_path / "v6")
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["metadata"].pop("hook_layer")
    (folder / "cfg.json").write_text(json.dumps(cfg))
    detected = detect_format(folder / "cfg.json")  # a file inside the folder works too
    assert detected.config_preview["config_version"] == 6
    assert detected.layer == 9 and detected.model_name == "tiny-gpt2"


@pytest.mark.parametrize(
    ("repo", "model", "hook", "d_in"),
    [
        ("google/gemma-scope-2b-pt-res", "gemma-2-2b", "blocks.3.hook_resid_post", 16),
        ("google/gemma-scope-2b-pt-mlp", "gemma-2-2b", "blocks.3.hook_mlp_out", 16),
        ("google/gemma-scope-9b-pt-att", "gemma-2-9b", "blocks.3.attn.hook_z", 16),
        ("gemma-scope-2b-pt-res-canonical", "gemma-2-2b", "blocks.3.hook_resid_post", 16),
        ("gemma-scope-27b-pt-res-canonical", "gemma-2-27b", "blocks.3.hook_resid_post", 16),
        ("google/gemma-scope-9b-it-res", "gemma-2-9b-it", "blocks.3.hook_resid_post", 16),
    ],
)
def test_gemma_scope_hints(repo: str, model: str, hook: str, d_in: int, tmp_path: Path) -> None:
    sae = make_sae("jumprelu", seed=8)
    folder = write_gemma_scope(sae, tmp_path, layer=3, l0=77)
    detected = detect_format(
        folder, hints={"repo_id": repo, "path_in_repo": "layer_3/width_16k/average_l0_77"}
    )
    assert detected.format == "gemma_scope"
    assert (detected.model_name, detected.hook_name, detected.layer, detected.d_in) == (model, hook, 3, d_in)
    assert detected.config.extra["average_l0"] == 77 and detected.config.extra["width"] == 16384
    assert detected.config.apply_b_dec_to_input is False and detected.config.context_size == 1024


def test_gemma_scope_repo_from_cache_path_and_embedding(tmp_path: Path) -> None:
    sae = make_sae("jumprelu", seed=9)
    cache = tmp_path / "models--google--gemma-scope-2b-pt-res" / "snapshots" / "abc"
    folder = write_gemma_scope(sae, cache, layer=12)
    assert detect_format(folder).hook_name == "blocks.12.hook_resid_post"
    unknown = detect_format(write_gemma_scope(sae, tmp_path / "plain", layer=2))
    assert unknown.hook_name is None and unknown.layer == 2 and unknown.config_preview["hook_known"] is False
    emb = cache / "embedding" / "width_4k" / "average_l0_6"
    emb.mkdir(parents=True)
    (folder / "params.npz").rename(emb / "params.npz")
    detected = detect_format(emb)
    assert (detected.hook_name, detected.layer) == ("hook_embed", None)  # as SAELens: no layer
    loaded = read_sae(emb)
    torch.testing.assert_close(loaded.W_enc, sae.W_enc / 4.0)  # √d_in = 4
    torch.testing.assert_close(loaded.W_dec, sae.W_dec * 4.0)


def test_sparsify_matches_brute_force(tmp_path: Path) -> None:
    sae = make_sae("topk", seed=10, k=7)
    folder = write_sparsify(sae, tmp_path / "run", layer=5)
    detected = detect_format(tmp_path / "run")
    assert (detected.format, detected.layer, detected.hook_name) == (
        "sparsify",
        5,
        "blocks.5.hook_resid_post",
    )
    assert (
        detected.model_name == "tiny-gpt2" and detected.config.k == 7 and detected.config.context_size == 64
    )
    x = torch.randn(8, 16)
    torch.testing.assert_close(read_sae(folder).encode(x), reference_encode(sae, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_dictionary_learning_matches_brute_force(arch: str, tmp_path: Path) -> None:
    sae = make_sae(arch, seed=11)
    folder = write_dictionary_learning(sae, tmp_path / "trainer_0", layer=4)
    detected = detect_format(folder)
    assert detected.architecture == arch and detected.hook_name == "blocks.4.hook_resid_post"
    assert detected.model_name == "tiny-gpt2" and detected.config.context_size == 96
    x = torch.randn(8, 16)
    torch.testing.assert_close(read_sae(folder).encode(x), reference_encode(sae, x), atol=1e-5, rtol=1e-5)


class _Evil:
    def __reduce__(self):  # runs a shell command when unpickled without weights_only
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    folder = write_dictionary_learning(make_sae("standard"), tmp_path / "ae")
    evil = _Evil()
    evil.marker = tmp_path / "pwned"
    torch.save({"W_enc": torch.zeros(1), "payload": evil}, folder / "ae.pt")
    assert detect_format(folder).format == "dictionary_learning"  # config only: ae.pt not opened
    with pytest.raises(InvalidInputError, match="unsafe"):
        read_sae(folder)
    assert not evil.marker.exists()


def test_truncated_safetensors_detected_from_header_but_not_read(tmp_path: Path) -> None:
    folder = write_saelens(make_sae("standard", d_sae=300), tmp_path / "sae")
    weights = folder / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-5000])
    detected = detect_format(folder)
    assert (detected.d_in, detected.d_sae) == (16, 300)
    with pytest.raises(CorruptFileError, match="truncated"):
        read_sae(folder)


def test_corrupt_files_name_the_file(tmp_path: Path) -> None:
    folder = write_gemma_scope(make_sae("jumprelu"), tmp_path)
    npz = folder / "params.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(CorruptFileError, match="params.npz"):
        detect_format(folder)
    bad = write_saelens(make_sae("standard"), tmp_path / "bad")
    (bad / "cfg.json").write_text("{not json")
    with pytest.raises(CorruptFileError, match="cfg.json"):
        detect_format(bad)


def test_unknown_layout_lists_files_and_formats(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("hi")
    with pytest.raises(UnknownFormatError) as err:
        detect_format(tmp_path)
    message = str(err.value)
    assert "weights.bin" in message and "sub/notes.txt" in message
    assert all(name in message for name in FORMAT_NAMES)
    assert err.value.details["formats_tried"] == list(FORMAT_NAMES)


def test_hf_model_folder_is_not_a_native_sae(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    save_file({"wte.weight": torch.zeros(2, 2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(UnknownFormatError):
        detect_format(tmp_path)


def test_nested_repo_single_and_several(tmp_path: Path) -> None:
    write_saelens(
        make_sae("standard", hook_name="blocks.0.hook_resid_pre"),
        tmp_path / "one" / "blocks.0.hook_resid_pre",
    )
    assert detect_format(tmp_path / "one").root == tmp_path / "one" / "blocks.0.hook_resid_pre"
    repo = tmp_path / "repo"
    for layer in (0, 1, 2):
        write_saelens(
            make_sae("standard", hook_name=f"blocks.{layer}.hook_resid_pre"),
            repo / f"blocks.{layer}.hook_resid_pre",
        )
    (repo / ".cache").mkdir()
    write_saelens(make_sae("standard"), repo / ".cache" / "hidden")
    found = find_saes(repo)
    assert [d.layer for d in found] == [0, 1, 2]
    with pytest.raises(AmbiguousSAEError) as err:
        detect_format(repo)
    assert "blocks.1.hook_resid_pre" in str(err.value)
    assert err.value.details["candidates"] == [f"blocks.{i}.hook_resid_pre" for i in (0, 1, 2)]


def test_find_saes_passes_sub_path_hints(tmp_path: Path) -> None:
    sae = make_sae("jumprelu")
    write_gemma_scope(sae, tmp_path / "dl", layer=1, l0=10)
    write_gemma_scope(sae, tmp_path / "dl", layer=2, l0=20)
    found = find_saes(tmp_path / "dl", hints={"repo_id": "google/gemma-scope-2b-pt-mlp", "path_in_repo": ""})
    assert [d.hook_name for d in found] == ["blocks.1.hook_mlp_out", "blocks.2.hook_mlp_out"]


def test_classify_paths() -> None:
    listing = [
        "README.md",
        "layer_0/width_16k/average_l0_105/params.npz",
        "layer_0/width_16k/average_l0_105/cfg.json",
        "blocks.3.hook_resid_pre/cfg.json",
        "blocks.3.hook_resid_pre/sae_weights.safetensors",
        "blocks.3.hook_resid_pre/sparsity.safetensors",
        "layers.4/cfg.json",
        "layers.4/sae.safetensors",
        "trainer_0/ae.pt",
        "trainer_0/config.json",
        "mine/config.json",
        "mine/model.safetensors",
        "cfg.json",
    ]
    assert classify_paths(listing) == [
        ("blocks.3.hook_resid_pre", "saelens"),
        ("layer_0/width_16k/average_l0_105", "gemma_scope"),
        ("layers.4", "sparsify"),
        ("mine", "mistudio"),
        ("trainer_0", "dictionary_learning"),
    ]


def test_detected_to_dict_is_json(tmp_path: Path) -> None:
    folder = write_in_format(make_sae("batchtopk"), "mistudio", tmp_path)
    data = inspect_sae(folder).to_dict()
    json.dumps(data)
    assert data["format"] == "mistudio" and data["architecture"] == "batchtopk"
    assert data["config_preview"]["has_training_metadata"] is True


# ----- every SAELens registry family: our reader against SAELens's own loader and SAE classes ------------------


def _same(ours, lens, x: torch.Tensor) -> None:
    """Encode and the full forward pass agree with SAELens's on `x` (1e-5)."""
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(x), lens.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours(x), lens(x), atol=1e-5, rtol=1e-5)
        acts = ours.encode(x)
        assert 0 < int((acts > 0).sum()) < acts.numel()  # a meaningful comparison: some features fire, not all


def _lens_fields(lens) -> dict:
    meta = lens.cfg.metadata
    return {"d_in": lens.cfg.d_in, "d_sae": lens.cfg.d_sae, "model_name": meta.model_name, "hook_name": meta.hook_name,
            "apply_b_dec_to_input": lens.cfg.apply_b_dec_to_input, "context_size": meta.context_size}


def _our_fields(sae) -> dict:
    cfg = sae.cfg
    return {"d_in": cfg.d_in, "d_sae": cfg.d_sae, "model_name": cfg.model_name, "hook_name": cfg.hook_name,
            "apply_b_dec_to_input": cfg.apply_b_dec_to_input, "context_size": cfg.context_size}


GS2_REPO = "google/gemma-scope-2-1b-pt"


@pytest.mark.parametrize(("site", "affine", "config"), [
    ("resid_post", False, True), ("attn_out_all", False, True), ("mlp_out", False, False),
    ("transcoder", False, True), ("transcoder_all", True, True), ("transcoder", True, False),
])
def test_gemma_scope_2_matches_saelens(site: str, affine: bool, config: bool, tmp_path: Path) -> None:
    folder = write_gemma_scope_2(tmp_path, site, layer=3, l0="big" if affine else "small", affine=affine,
                                 config=config)
    lens = saelens_reference("gemma_3", GS2_REPO, folder, tmp_path)
    detected = detect_format(tmp_path / folder, hints={"repo_id": GS2_REPO, "path_in_repo": folder})
    assert detected.format == "gemma_scope_2" and detected.files == [f for f in ("config.json", "params.safetensors")
                                                                      if (tmp_path / folder / f).exists()]
    ours = read_sae(tmp_path / folder, hints={"repo_id": GS2_REPO, "path_in_repo": folder})
    assert _our_fields(ours) == _lens_fields(lens)
    meta = lens.cfg.metadata
    assert (ours.cfg.hook_name_out, ours.cfg.hf_hook_name, ours.cfg.hf_hook_name_out) == (
        meta.get("hook_name_out"), meta.get("hf_hook_name"), meta.get("hf_hook_name_out"))
    transcoder = site.startswith("transcoder")
    assert ours.is_transcoder == transcoder and ours.cfg.skip_connection == affine
    assert type(lens).__name__ == {(False, False): "JumpReLUSAE", (True, False): "JumpReLUTranscoder",
                                   (True, True): "JumpReLUSkipTranscoder"}[(transcoder, affine)]
    assert ours.cfg.model_name == "google/gemma-3-1b-pt"
    _same(ours, lens, torch.randn(7, 32))


def test_gemma_scope_2_hooks_by_site(tmp_path: Path) -> None:
    expected = {
        "resid_post": ("blocks.3.hook_resid_post", None, "model.layers.3.output"),
        "attn_out": ("blocks.3.attn.hook_z", None, "model.layers.3.self_attn.o_proj.input"),
        "mlp_out_all": ("blocks.3.hook_mlp_out", None, "model.layers.3.post_feedforward_layernorm.output"),
        "transcoder": ("blocks.3.hook_mlp_in", "blocks.3.hook_mlp_out",
                       "model.layers.3.pre_feedforward_layernorm.output"),
    }
    for site, (hook, hook_out, hf) in expected.items():
        folder = write_gemma_scope_2(tmp_path / site, site, layer=3, config=False)
        cfg = detect_format(tmp_path / site / folder, hints={"repo_id": "google/gemma-scope-2-270m-pt"}).config
        assert (cfg.hook_name, cfg.hook_name_out, cfg.hf_hook_name, cfg.hook_layer) == (hook, hook_out, hf, 3)
        assert cfg.model_name == "google/gemma-3-270m"  # the 270m model has no -pt suffix


def test_gemma_2_transcoder_matches_saelens(tmp_path: Path) -> None:
    repo = "google/gemma-scope-2b-pt-transcoders"
    folder = write_gemma_2_transcoder(tmp_path, layer=3)
    lens = saelens_reference("gemma_2_transcoder", repo, folder, tmp_path, overrides={"d_in": 32, "d_out": 32, "d_sae": 64})
    ours = read_sae(tmp_path / folder, hints={"repo_id": repo, "path_in_repo": folder})
    assert ours.cfg.hook_name == lens.cfg.metadata.hook_name == "blocks.3.ln2.hook_normalized"
    assert ours.cfg.hook_name_out == lens.cfg.metadata.hook_name_out == "blocks.3.hook_mlp_out"
    assert ours.cfg.model_name == lens.cfg.metadata.model_name == "gemma-2-2b" and ours.cfg.d_out == 32
    assert ours.cfg.hf_hook_name == "model.layers.3.pre_feedforward_layernorm.output"
    _same(ours, lens, torch.randn(7, 32))


QWEN_REPO = "Qwen/SAE-Res-Qwen3-1.7B-Base-W1K-L0_50"


def test_qwen_scope_matches_saelens_one_sae_per_file(tmp_path: Path) -> None:
    files = write_qwen_scope(tmp_path, layers=(0, 1, 10))
    found = find_saes(tmp_path, hints={"repo_id": QWEN_REPO})
    assert [(d.format, d.location, d.files, d.layer) for d in found] == [
        ("qwen_scope", f, [f], layer) for f, layer in zip(files, (0, 1, 10), strict=True)]
    with pytest.raises(AmbiguousSAEError, match="layer1.sae.pt"):
        detect_format(tmp_path, hints={"repo_id": QWEN_REPO})
    assert detect_format(tmp_path / "layer1.sae.pt", hints={"repo_id": QWEN_REPO}).layer == 1
    assert detect_format(tmp_path, hints={"repo_id": QWEN_REPO, "path_in_repo": "layer10.sae.pt"}).layer == 10
    lens = saelens_reference("qwen_scope", QWEN_REPO, "layer1.sae.pt", tmp_path, overrides={"d_in": 16})
    ours = read_sae(tmp_path / "layer1.sae.pt", hints={"repo_id": QWEN_REPO})
    assert _our_fields(ours) == _lens_fields(lens)
    assert (ours.cfg.architecture, ours.cfg.k, ours.cfg.d_sae) == ("topk", 50, 1024)
    assert ours.cfg.hf_hook_name == lens.cfg.metadata.hf_hook_name + ".output"
    _same(ours, lens, torch.randn(7, 16))
    with pytest.raises(InvalidInputError, match="repo id"):
        detect_format(tmp_path / "layer0.sae.pt")  # k is only in the repo id


def test_llama_scope_matches_saelens_with_norm_scaling(tmp_path: Path) -> None:
    repo = "fnlp/Llama3_1-8B-Base-LXR-8x"
    folder = write_llama_scope(tmp_path, layer=3, norm_in=5.0)
    factor = 16**0.5 / 5.0
    lens = saelens_reference("llama_scope", repo, folder, tmp_path, norm_scaling_factor=factor)
    detected = detect_format(tmp_path / folder)
    assert detected.format == "llama_scope"
    assert detected.files == ["checkpoints/final.safetensors", "hyperparams.json", "lm_config.json"]
    assert detected.config.normalize_activations == "expected_average_only_in"
    ours = read_detected(detected)
    assert ours.cfg.normalize_activations == "none" and ours.cfg.extra["folded_norm_scaling_factor"] == factor
    assert _our_fields(ours) == _lens_fields(lens)
    _same(ours, lens, torch.randn(7, 16) * 3)
    # a registry factor (put in extra, as the catalog does) wins over the files' own
    detected.config.extra["norm_scaling_factor"] = 2.0
    lens2 = saelens_reference("llama_scope", repo, folder, tmp_path, norm_scaling_factor=2.0)
    _same(read_detected(detected), lens2, torch.randn(7, 16) * 3)


def test_llama_scope_r1_distill_matches_saelens(tmp_path: Path) -> None:
    folder = write_llama_scope_r1(tmp_path, layer=5)
    lens = saelens_reference("llama_scope_r1_distill", "fnlp/Llama-Scope-R1-Distill", folder, tmp_path,
                             norm_scaling_factor=1.7)
    detected = detect_format(tmp_path / folder)
    assert detected.format == "llama_scope_r1_distill" and detected.config.d_sae == 64
    assert "norm_scaling_factor" not in detected.config.extra  # only the registry knows it
    unfolded = read_detected(detected)
    assert unfolded.cfg.normalize_activations == "expected_average_only_in"
    detected.config.extra["norm_scaling_factor"] = 1.7
    ours = read_detected(detected)
    assert _our_fields(ours) == _lens_fields(lens)
    _same(ours, lens, torch.randn(7, 16))


@pytest.mark.parametrize(("skip", "config_yaml", "wandb"), [
    (False, True, "wandb-config.yaml"), (False, False, "wanb-config.yaml")])
def test_mwhanna_transcoder_matches_saelens(skip: bool, config_yaml: bool, wandb: str, tmp_path: Path) -> None:
    repo = "mwhanna/qwen3-4b-transcoders"
    files = write_mwhanna(tmp_path, layers=(0, 1, 2), config_yaml=config_yaml, wandb_name=wandb, skip=skip)
    found = find_saes(tmp_path, hints={"repo_id": repo})
    assert [d.location for d in found] == files
    shared = sorted(n for n in ("config.yaml", wandb) if (tmp_path / n).exists())
    assert found[1].files == sorted(["layer_1.safetensors", *shared])
    lens = saelens_reference("mwhanna_transcoder", repo, "layer_1.safetensors", tmp_path)
    ours = read_sae(tmp_path / "layer_1.safetensors", hints={"repo_id": repo})
    assert _our_fields(ours) == _lens_fields(lens) and ours.cfg.model_name == "Qwen/Qwen3-4B"
    assert (ours.cfg.hook_name, ours.cfg.hook_name_out) == ("blocks.1.mlp.hook_in", "blocks.1.hook_mlp_out")
    assert ours.cfg.hf_hook_name == "model.layers.1.mlp.input"
    assert ours.cfg.model_from_pretrained_kwargs == {"fold_ln": False} and ours.is_transcoder
    _same(ours, lens, torch.randn(7, 16))


def test_mwhanna_skip_connection_is_applied_as_circuit_tracer_does(tmp_path: Path) -> None:
    write_mwhanna(tmp_path, layers=(0,), skip=True)
    from safetensors.torch import load_file

    raw = load_file(str(tmp_path / "layer_0.safetensors"))
    ours = read_sae(tmp_path / "layer_0.safetensors")
    x = torch.randn(5, 16)
    acts = torch.relu(x @ raw["W_enc"].T + raw["b_enc"])
    expected = acts @ raw["W_dec"] + raw["b_dec"] + x @ raw["W_skip"].T
    torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


def test_mntss_clt_layers_match_saelens(tmp_path: Path) -> None:
    repo = "mntss/clt-gemma-2-2b-2.5M"
    stems = write_mntss_clt(tmp_path, n_layers=3)
    found = find_saes(tmp_path)
    assert [(d.format, d.location) for d in found] == [("mntss_clt_layer", s) for s in stems]
    assert found[1].files == ["W_dec_1.safetensors", "W_enc_1.safetensors", "config.yaml"]
    assert classify_paths(sorted(p.name for p in tmp_path.iterdir())) == [("0", "mntss_clt_layer"),
                                                                          ("1", "mntss_clt_layer"),
                                                                          ("2", "mntss_clt_layer")]
    for stem in stems:
        lens = saelens_reference("mntss_clt_layer_transcoder", repo, stem, tmp_path)
        ours = read_sae(tmp_path, hints={"repo_id": repo, "path_in_repo": stem})
        assert ours.cfg.hook_layer == int(stem) and ours.cfg.extra["cross_layer_targets"] == 3 - int(stem)
        assert (ours.cfg.hook_name, ours.cfg.hook_name_out) == (lens.cfg.metadata.hook_name,
                                                               lens.cfg.metadata.hook_name_out)
        assert _our_fields(ours) == _lens_fields(lens)
        _same(ours, lens, torch.randn(6, 16))


def test_goodfire_and_deepseek_match_saelens(tmp_path: Path) -> None:
    name = write_goodfire(tmp_path / "gf")
    lens = saelens_reference("goodfire", "Goodfire/Llama-3.1-8B-Instruct-SAE-l19", name, tmp_path / "gf",
                             overrides={"d_in": 16, "d_sae": 64})
    ours = read_sae(tmp_path / "gf" / name)
    assert _our_fields(ours) == _lens_fields(lens) and ours.cfg.hook_name == "blocks.19.hook_resid_post"
    _same(ours, lens, torch.randn(7, 16))

    name = write_deepseek_r1(tmp_path / "ds", layer=19)
    lens = saelens_reference("deepseek_r1", "qresearch/DeepSeek-R1-Distill-Llama-8B-SAE-l19", name, tmp_path / "ds",
                             overrides={"d_in": 16, "d_sae": 64})
    detected = detect_format(tmp_path / "ds")
    assert (detected.format, detected.location, detected.files) == ("deepseek_r1", name, [name])
    ours = read_detected(detected)
    assert _our_fields(ours) == _lens_fields(lens)
    _same(ours, lens, torch.randn(7, 16))


def test_connor_hook_z_matches_saelens(tmp_path: Path) -> None:
    names = write_connor_hook_z(tmp_path, layers=(0, 4))
    found = find_saes(tmp_path)
    assert [d.format for d in found] == ["connor_rob_hook_z"] * 2
    assert found[1].files == [names[1], names[1].removesuffix(".pt") + "_cfg.json"]
    lens = saelens_reference("connor_rob_hook_z", "ckkissane/attn-saes-gpt2-small-all-layers", names[1], tmp_path)
    ours = read_sae(tmp_path / names[1])
    assert _our_fields(ours) == _lens_fields(lens) and ours.cfg.hook_name == "blocks.4.attn.hook_z"
    z = torch.randn(3, 5, 4, 8)  # [batch, pos, heads, d_head] as hook_z is captured: SAELens flattens the heads,
    with torch.no_grad():     # the engine hands the SAE the flattened [batch, pos, heads·d_head]
        torch.testing.assert_close(ours.encode(z.flatten(-2)), lens.encode(z), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours(z.flatten(-2)), lens(z).flatten(-2), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("tied", "diff_type", "n_attn"), [(True, "topk", 1), (False, "relu", 2)])
def test_temporal_matches_saelens_on_sequences(tied: bool, diff_type: str, n_attn: int, tmp_path: Path) -> None:
    folder = write_temporal(tmp_path, layer=12, tied=tied, diff_type=diff_type, n_attn_layers=n_attn)
    overrides = {"model_name": "gemma-2-2b", "hook_name": "blocks.12.hook_resid_post"}
    lens = saelens_reference("temporal", "canrager/temporalSAEs", folder, tmp_path, overrides=overrides)
    ours = read_sae(tmp_path / folder, hints={"path_in_repo": folder, "model_name": "gemma-2-2b"})
    assert (ours.cfg.architecture, ours.cfg.hook_name, ours.cfg.d_sae) == ("temporal", "blocks.12.hook_resid_post", 64)
    x = torch.randn(3, 9, 16) * 2
    _same(ours, lens, x)
    with torch.no_grad():
        chunks = torch.cat([acts for _, acts in ours.encode_chunks(x, 20)], dim=-1)
        torch.testing.assert_close(chunks, lens.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.encode(x[1]), lens.encode(x[1:2])[0], atol=1e-5, rtol=1e-5)
        # causal: a position's features never depend on later positions
        torch.testing.assert_close(ours.encode(x[:, :4]), ours.encode(x)[:, :4], atol=1e-5, rtol=1e-5)
    with pytest.raises(InvalidInputError, match="whole sequences"):
        ours.encode(torch.randn(16))


@pytest.mark.parametrize("dict_class", ["MatryoshkaBatchTopKSAE", "BatchTopKSAE", "AutoEncoderTopK",
                                        "JumpReluAutoEncoder", "GatedAutoEncoder", "AutoEncoder"])
def test_dictionary_learning_classes_match_saelens(dict_class: str, tmp_path: Path) -> None:
    arch = {"MatryoshkaBatchTopKSAE": "batchtopk", "BatchTopKSAE": "batchtopk", "AutoEncoderTopK": "topk",
            "JumpReluAutoEncoder": "jumprelu", "GatedAutoEncoder": "gated", "AutoEncoder": "standard"}[dict_class]
    folder = write_dictionary_learning(make_sae(arch, seed=3), tmp_path / "resid_post_layer_4" / "trainer_0")
    doc = json.loads((folder / "config.json").read_text())
    doc["trainer"]["dict_class"] = dict_class
    (folder / "config.json").write_text(json.dumps(doc))
    lens = saelens_reference("dictionary_learning_1", "canrager/lm_sae", "resid_post_layer_4/trainer_0", tmp_path)
    ours = read_sae(folder)
    assert _our_fields(ours) == _lens_fields(lens)
    _same(ours, lens, torch.randn(7, 16))


def test_classify_paths_lists_file_level_saes_and_their_files() -> None:
    from mistudio.saes.formats import sae_files, sae_folder

    listing = [
        "README.md", "config.yaml", "wandb-config.yaml", "layer_0.safetensors", "layer_10.safetensors",
        "layer_2.safetensors", "qwen/layer0.sae.pt", "qwen/layer1.sae.pt",
        "resid_post/layer_3_width_16k_l0_small/params.safetensors",
        "resid_post/layer_3_width_16k_l0_small/config.json",
        "Llama3_1-8B-Base-L3R-8x/hyperparams.json", "Llama3_1-8B-Base-L3R-8x/checkpoints/final.safetensors",
        "Llama3_1-8B-Base-L3R-8x/checkpoints/step_100.safetensors",
        "z/run_a.pt", "z/run_a_cfg.json", "z/orphan.pt",
        "temporal/gemma-2-2B/layer_12/temporal/conf.yaml",
        "temporal/gemma-2-2B/layer_12/temporal/latest_ckpt.safetensors",
        "gf/Llama-3.1-8B-Instruct-SAE-l19.pth",
    ]
    assert classify_paths(listing) == [
        ("Llama3_1-8B-Base-L3R-8x", "llama_scope"),
        ("gf/Llama-3.1-8B-Instruct-SAE-l19.pth", "goodfire"),
        ("layer_0.safetensors", "mwhanna_transcoder"),
        ("layer_2.safetensors", "mwhanna_transcoder"),
        ("layer_10.safetensors", "mwhanna_transcoder"),
        ("qwen/layer0.sae.pt", "qwen_scope"),
        ("qwen/layer1.sae.pt", "qwen_scope"),
        ("resid_post/layer_3_width_16k_l0_small", "gemma_scope_2"),
        ("temporal/gemma-2-2B/layer_12/temporal", "temporal"),
        ("z/run_a.pt", "connor_rob_hook_z"),
    ]
    assert sae_files("layer_2.safetensors", "mwhanna_transcoder", listing) == [
        "config.yaml", "layer_2.safetensors", "wandb-config.yaml"]
    assert sae_files("Llama3_1-8B-Base-L3R-8x", "llama_scope", listing) == [
        "Llama3_1-8B-Base-L3R-8x/checkpoints/final.safetensors", "Llama3_1-8B-Base-L3R-8x/hyperparams.json"]
    assert sae_files("qwen/layer1.sae.pt", "qwen_scope", listing) == ["qwen/layer1.sae.pt"]
    assert sae_files("z/run_a.pt", "connor_rob_hook_z", listing) == ["z/run_a.pt", "z/run_a_cfg.json"]
    assert sae_folder("qwen/layer1.sae.pt", listing) == "qwen"
    assert sae_folder("Llama3_1-8B-Base-L3R-8x", listing) == "Llama3_1-8B-Base-L3R-8x"
    assert sae_folder("layer_2.safetensors", listing) == ""


def test_saelens_transcoder_round_trip_loads_in_saelens(tmp_path: Path) -> None:
    folder = write_gemma_scope_2(tmp_path, "transcoder", layer=2, affine=True, l0="big")
    ours = read_sae(tmp_path / folder, hints={"repo_id": GS2_REPO})
    out = write_saelens(ours, tmp_path / "exported")
    lens = _saelens_load(out)
    assert type(lens).__name__ == "JumpReLUSkipTranscoder" and lens.cfg.d_out == 32
    assert lens.cfg.metadata.hook_name_out == "blocks.2.hook_mlp_out"
    again = read_sae(out)
    assert again.cfg.skip_connection and again.cfg.hf_hook_name == ours.cfg.hf_hook_name
    _same(again, lens, torch.randn(5, 32))


@pytest.mark.parametrize("v5", [False, True])
def test_saelens_expected_average_only_in_is_folded_with_the_registry_factor(v5: bool, tmp_path: Path) -> None:
    sae = make_sae("standard", seed=8, normalize_activations="expected_average_only_in")
    folder = write_saelens(sae, tmp_path / "sae")
    if v5:  # pre-6 flat config spelling the mode as a boolean, as older SAELens releases do
        cfg = json.loads((folder / "cfg.json").read_text())
        flat = {**{k: v for k, v in cfg.items() if k != "metadata"}, **cfg["metadata"]}
        flat.update(normalize_activations=True, hook_point=flat.pop("hook_name"), sae_lens_version="3.12.0")
        (folder / "cfg.json").write_text(json.dumps(flat))
    lens = _saelens_load(folder)
    lens.fold_activation_norm_scaling_factor(2.5)  # what SAE.from_pretrained does with the registry's factor
    detected = detect_format(folder)
    assert detected.config.normalize_activations == "expected_average_only_in"
    detected.config.extra["norm_scaling_factor"] = 2.5  # the catalog puts the registry's factor here
    ours = read_detected(detected)
    assert ours.cfg.normalize_activations == "none"
    x = torch.randn(6, 16) * 4
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(x), lens.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours(x), lens(x), atol=1e-5, rtol=1e-5)
