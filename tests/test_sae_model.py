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


# ----- transcoders and temporal SAEs against SAELens's own classes ---------------------------------------------


def _lens_class(architecture: str, **cfg: object):
    from sae_lens.registry import get_sae_class

    sae_cls, cfg_cls = get_sae_class(architecture)
    return sae_cls, cfg_cls(**cfg)


@pytest.mark.parametrize(("lens_arch", "arch", "skip"), [
    ("transcoder", "standard", False), ("skip_transcoder", "standard", True),
    ("jumprelu_transcoder", "jumprelu", False), ("jumprelu_skip_transcoder", "jumprelu", True)])
@pytest.mark.parametrize("d_out", [24, 16])
def test_transcoders_match_saelens(lens_arch: str, arch: str, skip: bool, d_out: int) -> None:
    d_in, d_sae = 16, 40
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture=arch, d_out=d_out, apply_b_dec_to_input=False,
                    skip_connection=skip, hook_name="blocks.2.hook_mlp_in", hook_name_out="blocks.2.hook_mlp_out")
    ours = SAE(cfg)
    assert ours.is_transcoder and ours.W_dec.shape == (d_sae, d_out) and ours.b_dec.shape == (d_out,)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        if arch == "jumprelu":
            ours.threshold.copy_(torch.rand(d_sae, generator=gen) * 0.3)
    lens_cls, lens_cfg = _lens_class(lens_arch, d_in=d_in, d_sae=d_sae, d_out=d_out, apply_b_dec_to_input=False)
    lens = lens_cls(lens_cfg)
    state = {name: p.detach().clone() for name, p in ours.named_parameters()}
    if skip:
        state["W_skip"] = state["W_skip"].T.contiguous()  # SAELens keeps W_skip [d_out, d_in]
    lens.load_state_dict(state)
    x = torch.randn(2, 5, d_in)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(x), lens.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours(x), lens(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.decode(ours.encode(x), x), lens.decode(lens.encode(x)), atol=1e-5, rtol=1e-5)
        chunks = torch.cat([a for _, a in ours.encode_chunks(x, 7)], dim=-1)
        torch.testing.assert_close(chunks, lens.encode(x), atol=1e-5, rtol=1e-5)


def test_transcoder_config_rules() -> None:
    with pytest.raises(InvalidInputError, match="never subtracts b_dec"):
        SAEConfig(d_in=4, d_sae=8, d_out=4)
    with pytest.raises(InvalidInputError, match="activation must be one of"):
        SAEConfig(d_in=4, d_sae=8, architecture="topk", k=2, d_out=4, apply_b_dec_to_input=False)
    plain = SAEConfig(d_in=4, d_sae=8)
    assert not plain.is_transcoder and plain.output_width == 4
    assert SAEConfig(d_in=4, d_sae=8, hook_name_out="blocks.0.hook_mlp_out", apply_b_dec_to_input=False).is_transcoder
    round_trip = SAEConfig.from_dict(SAEConfig(d_in=4, d_sae=8, d_out=6, apply_b_dec_to_input=False,
                                               hf_hook_name="model.layers.0.mlp.input").to_dict())
    assert (round_trip.d_out, round_trip.hf_hook_name) == (6, "model.layers.0.mlp.input")
    with pytest.raises(InvalidInputError, match="temporal"):
        SAEConfig(d_in=4, d_sae=8, normalize_activations="constant_scalar_rescale")


def test_fold_norm_scaling_matches_saelens_for_a_transcoder() -> None:
    cfg = SAEConfig(d_in=8, d_sae=16, architecture="jumprelu", d_out=8, apply_b_dec_to_input=False,
                    normalize_activations="expected_average_only_in")
    ours = SAE(cfg)
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.rand(p.shape) * 0.5)
    lens_cls, lens_cfg = _lens_class("jumprelu_transcoder", d_in=8, d_sae=16, d_out=8, apply_b_dec_to_input=False,
                                     normalize_activations="expected_average_only_in")
    lens = lens_cls(lens_cfg)
    lens.load_state_dict({n: p.detach().clone() for n, p in ours.named_parameters()})
    ours.fold_activation_norm_scaling_factor(1.9)
    lens.fold_activation_norm_scaling_factor(1.9)
    x = torch.randn(6, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), lens(x), atol=1e-5, rtol=1e-5)
    assert ours.cfg.normalize_activations == "none"


def test_temporal_module_matches_saelens_and_round_trips_natively(tmp_path) -> None:
    from mistudio.saes.formats import read_sae, write_native
    from mistudio.saes.temporal import TemporalSAE

    settings = {"n_heads": 2, "n_attn_layers": 1, "bottleneck_factor": 4, "sae_diff_type": "topk", "kval_topk": 5,
                "tied_weights": False, "activation_normalization_factor": 0.5}
    cfg = SAEConfig(d_in=8, d_sae=32, architecture="temporal", normalize_activations="constant_scalar_rescale",
                    hook_name="blocks.1.hook_resid_post", extra={"temporal": settings})
    with pytest.raises(InvalidInputError, match="TemporalSAE"):
        SAE(cfg)
    ours = TemporalSAE(cfg)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    lens_cls, lens_cfg = _lens_class("temporal", d_in=8, d_sae=32, n_heads=2, n_attn_layers=1, bottleneck_factor=4,
                                     sae_diff_type="topk", kval_topk=5, tied_weights=False,
                                     activation_normalization_factor=0.5,
                                     normalize_activations="constant_scalar_rescale")
    lens = lens_cls(lens_cfg)
    lens.load_state_dict({n: p.detach().clone() for n, p in ours.named_parameters()})
    x = torch.randn(2, 6, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(x), lens.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours(x), lens(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.decode(ours.encode(x)), lens.decode(lens.encode(x)), atol=1e-5, rtol=1e-5)
        back = read_sae(write_native(ours, tmp_path / "native"))
        assert isinstance(back, TemporalSAE)
        torch.testing.assert_close(back.encode(x), ours.encode(x), atol=0, rtol=0)
        torch.testing.assert_close(back.encode_range(x, 3, 20), ours.encode(x)[..., 3:20], atol=0, rtol=0)
