"""The in-memory SAE: encode_range, brute-force agreement, dtype/size bookkeeping, config validation."""

from __future__ import annotations

import pytest
import torch
from sae_factories import ARCHITECTURES, make_sae, reference_encode

from mistudio.errors import InvalidInputError
from mistudio.saes.model import SAE, SAEConfig, layer_from_hook_name


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_encode_matches_brute_force(arch: str) -> None:
    sae = make_sae(arch, seed=1)
    x = torch.randn(7, sae.cfg.d_in)
    torch.testing.assert_close(sae.encode(x), reference_encode(sae, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("normalize", ["none", "layer_norm"])
def test_encode_range_equals_slice(arch: str, normalize: str) -> None:
    sae = make_sae(arch, d_sae=45, seed=2, normalize_activations=normalize)  # 45 is not a multiple of 7 or 16
    x = torch.randn(3, 5, sae.cfg.d_in)
    full = sae.encode(x)
    assert full.shape == (3, 5, 45)
    for start, stop in [(0, 45), (3, 30), (44, 45), (10, 10), (7, 14)]:
        for chunk in (7, 16, 4096):
            got = sae.encode_range(x, start, stop, chunk_size=chunk)
            torch.testing.assert_close(got, full[..., start:stop], atol=1e-5, rtol=0)
    with pytest.raises(InvalidInputError):
        sae.encode_range(x, 40, 46)
    for chunk, first in [(7, 0), (16, 16), (4096, 0)]:
        parts = list(sae.encode_chunks(x, chunk, start=first))
        assert [lo for lo, _ in parts] == list(range(first, 45, chunk))
        torch.testing.assert_close(torch.cat([a for _, a in parts], dim=-1), full[..., first:], atol=1e-5, rtol=0)


def test_topk_rescale_by_decoder_norm_encode_range_and_sparsity() -> None:
    sae = make_sae("topk", seed=3, rescale_acts_by_decoder_norm=True)
    x = torch.randn(9, sae.cfg.d_in)
    full = sae.encode(x)
    assert int((full != 0).sum(-1).max()) <= sae.cfg.k
    torch.testing.assert_close(sae.encode_range(x, 5, 33, chunk_size=6), full[:, 5:33], atol=1e-5, rtol=0)


def test_forward_undoes_runtime_normalisation() -> None:
    sae = make_sae("standard", normalize_activations="constant_norm_rescale")
    x = torch.randn(4, sae.cfg.d_in) * 50
    feats = sae.encode(x)
    # the reconstruction lives in the input's scale, not in the normalised one
    torch.testing.assert_close(sae(x), sae.decode(feats, x))
    ratio = sae(x).norm(dim=-1) / sae.decode(feats).norm(dim=-1)
    torch.testing.assert_close(ratio, x.norm(dim=-1) / sae.cfg.d_in**0.5, rtol=1e-4, atol=0)


def test_fold_scaling_factor_matches_scaled_input() -> None:
    sae = make_sae("jumprelu", seed=4)
    x = torch.randn(5, sae.cfg.d_in)
    expected_feats, expected_out = sae.encode(x * 3.0), sae(x * 3.0) / 3.0
    sae.fold_activation_norm_scaling_factor(3.0)
    torch.testing.assert_close(sae.encode(x), expected_feats, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae(x), expected_out, atol=1e-5, rtol=1e-5)


def test_sizes_and_dtype() -> None:
    sae = make_sae("gated", d_in=8, d_sae=20)
    assert sae.num_parameters() == 8 * 20 * 2 + 8 + 3 * 20
    assert sae.weights_nbytes() == sae.num_parameters() * 4
    assert sae.weights_nbytes("bfloat16") == sae.num_parameters() * 2
    sae.to(torch.bfloat16)
    assert sae.cfg.dtype == "bfloat16" and sae.dtype == torch.bfloat16
    assert sae.encode(torch.randn(2, 8)).dtype == torch.bfloat16


def test_config_validation_and_layer() -> None:
    with pytest.raises(InvalidInputError, match="architecture"):
        SAEConfig(d_in=4, d_sae=8, architecture="matryoshka")
    with pytest.raises(InvalidInputError, match="k"):
        SAEConfig(d_in=4, d_sae=8, architecture="topk")
    with pytest.raises(InvalidInputError, match="normalize"):
        SAEConfig(d_in=4, d_sae=8, normalize_activations="whiten")
    cfg = SAEConfig(
        d_in=4, d_sae=8, hook_name="blocks.11.attn.hook_z", dtype="torch.float16", extra={"l0": 3}
    )
    assert cfg.hook_layer == 11 and cfg.dtype == "float16"
    assert SAEConfig.from_dict({**cfg.to_dict(), "surprise": 1}).extra == {"surprise": 1, "l0": 3}
    assert layer_from_hook_name("hook_embed") is None
    assert layer_from_hook_name("model.layers.7.mlp") == 7


def test_from_state_dict_checks_shapes() -> None:
    cfg = SAEConfig(d_in=4, d_sae=8)
    good = {
        "W_enc": torch.ones(4, 8),
        "b_enc": torch.ones(8),
        "W_dec": torch.ones(8, 4),
        "b_dec": torch.ones(4),
    }
    assert SAE.from_state_dict(cfg, good).W_enc.sum() == 32
    with pytest.raises(InvalidInputError, match="shape"):
        SAE.from_state_dict(cfg, {**good, "W_dec": torch.ones(4, 8)})
    with pytest.raises(InvalidInputError, match="missing b_enc"):
        SAE.from_state_dict(cfg, {k: v for k, v in good.items() if k != "b_enc"})
