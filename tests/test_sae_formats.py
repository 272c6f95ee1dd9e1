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
    write_dictionary_learning,
    write_gemma_scope,
    write_in_format,
    write_saelens_v5,
    write_sparsify,
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
    assert (detected.hook_name, detected.layer) == ("hook_embed", 0)
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
