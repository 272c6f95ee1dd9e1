"""convert_sae between formats, and weight statistics."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from sae_factories import make_sae, write_dictionary_learning, write_gemma_scope, write_sparsify

from mistudio.errors import InvalidInputError
from mistudio.saes.convert import convert_sae
from mistudio.saes.formats import detect_format, read_sae, read_sparsity, write_native, write_saelens
from mistudio.saes.formats.native import read_training_metadata
from mistudio.saes.stats import weight_statistics


def test_gemma_scope_to_saelens_loads_in_saelens(tmp_path: Path) -> None:
    from sae_lens import SAE as LensSAE

    sae = make_sae("jumprelu", seed=1)
    src = write_gemma_scope(sae, tmp_path / "dl", layer=3)
    out = convert_sae(src, tmp_path / "out", to="saelens", hints={"repo_id": "google/gemma-scope-2b-pt-res"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lens = LensSAE.load_from_disk(str(out))
    assert lens.cfg.metadata.hook_name == "blocks.3.hook_resid_post"
    assert lens.cfg.metadata.model_name == "gemma-2-2b"
    assert lens.cfg.apply_b_dec_to_input is False
    x = torch.randn(6, 16)
    torch.testing.assert_close(lens.encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lens(x), sae(x), atol=1e-5, rtol=1e-5)


def test_saelens_to_native_and_back_keeps_sparsity_and_config(tmp_path: Path) -> None:
    sae = make_sae("topk", seed=2, rescale_acts_by_decoder_norm=True)
    sae.cfg.extra = {"l0": 5.0, "variance_explained": 0.9}
    sparsity = torch.linspace(-4, -2, sae.cfg.d_sae)
    src = write_saelens(sae, tmp_path / "a", sparsity=sparsity)
    native = convert_sae(src, tmp_path / "b", to="mistudio")
    assert detect_format(native).format == "mistudio"
    back = convert_sae(native, tmp_path / "c", to="saelens")
    assert read_sparsity(back) is None  # the native layout does not carry sparsity
    again = convert_sae(src, tmp_path / "d", to="saelens")
    torch.testing.assert_close(read_sparsity(again), sparsity)
    loaded = read_sae(back)
    assert loaded.cfg.to_dict() == sae.cfg.to_dict()
    x = torch.randn(4, 16)
    torch.testing.assert_close(loaded(x), sae(x), atol=1e-5, rtol=1e-5)


def test_native_training_metadata_survives_conversion(tmp_path: Path) -> None:
    sae = make_sae("gated")
    src = write_native(sae, tmp_path / "n", training_metadata={"steps": 123, "lr": 1e-4})
    out = convert_sae(src, tmp_path / "m", to="mistudio")
    assert read_training_metadata(out) == {"steps": 123, "lr": 1e-4}


@pytest.mark.parametrize("arch", ["standard", "topk", "gated", "batchtopk"])
def test_dictionary_learning_and_sparsify_convert(arch: str, tmp_path: Path) -> None:
    sae = make_sae(arch, seed=3)
    src = write_dictionary_learning(sae, tmp_path / "dl")
    out = convert_sae(src, tmp_path / "out", to="saelens")
    x = torch.randn(5, 16)
    torch.testing.assert_close(read_sae(out).encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)
    if arch == "topk":
        sp = convert_sae(write_sparsify(sae, tmp_path / "sp"), tmp_path / "sp_out", to="mistudio")
        torch.testing.assert_close(read_sae(sp).encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)


def test_convert_refuses_bad_target_and_existing_output(tmp_path: Path) -> None:
    src = write_saelens(make_sae("standard"), tmp_path / "a")
    with pytest.raises(InvalidInputError, match="cannot convert"):
        convert_sae(src, tmp_path / "x", to="gemma_scope")
    with pytest.raises(InvalidInputError, match="already exists"):
        convert_sae(src, src, to="saelens")
    assert convert_sae(src, tmp_path / "a2", to="saelens", overwrite=True).is_dir()


def test_read_sae_device_and_dtype(tmp_path: Path) -> None:
    src = write_saelens(make_sae("jumprelu"), tmp_path / "a")
    sae = read_sae(src, dtype="bfloat16")
    assert sae.dtype == torch.bfloat16 and sae.cfg.dtype == "bfloat16"


def test_weight_statistics() -> None:
    sae = make_sae("jumprelu", d_in=8, d_sae=12)
    with torch.no_grad():
        sae.W_dec[3].zero_()
        sae.W_dec[7].zero_()
        sae.W_dec[0] = torch.tensor([3.0, 4.0] + [0.0] * 6)
    stats = weight_statistics(sae)
    norms = sae.W_dec.norm(dim=-1)
    assert stats["zero_decoder_rows"] == 2
    assert stats["decoder_norm"]["min"] == 0.0
    assert stats["decoder_norm"]["max"] == pytest.approx(float(norms.max()))
    assert stats["decoder_norm"]["mean"] == pytest.approx(float(norms.mean()), rel=1e-6)
    assert stats["encoder_norm"]["max"] == pytest.approx(float(sae.W_enc.norm(dim=0).max()), rel=1e-6)
    assert stats["num_parameters"] == 8 * 12 * 2 + 8 + 12 * 2
    assert stats["weights_nbytes"] == stats["num_parameters"] * 4
    assert "threshold" in stats
