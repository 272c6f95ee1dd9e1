"""The weight-only Neuronpedia fields against their sources: SAELens's own `fold_W_dec_norm` (on SAELens SAEs
built from ours), SAEDashboard's own functions (`to_resid_direction` on a TransformerLens model holding the tiny HF
model's weights, `LogitsHistogramData.from_data`, `get_logits_table_data`, `add_neuron_alignment_data`), and a
brute-force cosine matrix with numpy's ordering."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("sae_dashboard")
pytest.importorskip("transformer_lens")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

from sae_dashboard.components import LogitsHistogramData  # noqa: E402
from sae_dashboard.data_parsing_fns import add_neuron_alignment_data, get_logits_table_data  # noqa: E402
from sae_dashboard.transformer_lens_wrapper import (  # noqa: E402
    ActivationConfig,
    TransformerLensWrapper,
    to_resid_direction,
)
from sae_factories import make_sae  # noqa: E402
from test_lm_parity import _tl_config, tl_model  # noqa: E402

from mistudio.extraction.logit_lens import histc_bar_values, histc_counts, lens_basis  # noqa: E402
from mistudio.extraction.related_weights import (  # noqa: E402
    PART,
    decoder_cosine_topk,
    decoder_fold_factors,
    folded_decoder,
    neuron_alignment,
    neuronpedia_weights,
    write_neuronpedia_weights,
)
from mistudio.lm.loading import load_model  # noqa: E402
from mistudio.lm.unembed import logit_lens_matrix  # noqa: E402
from mistudio.saes.formats import write_saelens  # noqa: E402
from mistudio.saes.model import SAE, SAEConfig  # noqa: E402
from mistudio.store.feature_store import FeatureStore  # noqa: E402
from mistudio.testing.tiny_models import build_tiny_model  # noqa: E402


def _lens_sae(sae: SAE, root: Path):
    from sae_lens import SAE as LensSAE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LensSAE.load_from_disk(str(write_saelens(sae, root)), device="cpu")


def _random_sae(d_in: int, d_sae: int, hook: str, seed: int, **cfg) -> SAE:
    sae = SAE(SAEConfig(d_in=d_in, d_sae=d_sae, hook_name=hook, model_name="tiny", **cfg))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sae.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        sae.W_dec.mul_(torch.rand(d_sae, 1, generator=g) * 3 + 0.2)  # rows of unequal norms
    return sae


def _transcoder() -> SAE:
    sae = _random_sae(16, 30, "blocks.1.hook_mlp_in", 3, architecture="jumprelu", d_out=16,
                      hook_name_out="blocks.1.hook_mlp_out", apply_b_dec_to_input=False)
    with torch.no_grad():
        sae.threshold.copy_(torch.rand(30, generator=torch.Generator().manual_seed(4)) * 0.2)
    return sae


SAES = {
    "standard": lambda: make_sae("standard", seed=1),
    "jumprelu": lambda: make_sae("jumprelu", seed=2),
    "batchtopk": lambda: make_sae("batchtopk", seed=3),  # SAELens loads it as jumprelu: folded
    "gated": lambda: make_sae("gated", seed=4),
    "topk": lambda: make_sae("topk", seed=5),  # SAELens refuses to fold
    "topk_rescaled": lambda: make_sae("topk", seed=6, rescale_acts_by_decoder_norm=True),
    "transcoder": _transcoder,
}


@pytest.mark.parametrize("name", list(SAES))
def test_fold_factors_are_what_saelens_folding_multiplies_activations_by(name, tmp_path):
    sae = SAES[name]()
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.3, 2.5, sae.cfg.d_sae).unsqueeze(1))
    lens = _lens_sae(sae, tmp_path / name)
    x = torch.randn(64, sae.cfg.d_in, generator=torch.Generator().manual_seed(9))
    before = lens.encode(x)
    try:
        lens.fold_W_dec_norm()
    except NotImplementedError:
        assert name == "topk"  # unsafe without rescale_acts_by_decoder_norm: activations and decoder stay
    factors = decoder_fold_factors(sae)
    assert factors.dtype == torch.float32 and factors.shape == (sae.cfg.d_sae,)
    assert (before > 0).any()
    torch.testing.assert_close(lens.encode(x), before * factors, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(folded_decoder(sae), lens.W_dec.detach(), atol=1e-6, rtol=1e-6)
    if name.startswith("topk"):
        assert torch.equal(factors, torch.ones(sae.cfg.d_sae))
    else:
        torch.testing.assert_close(factors, sae.W_dec.norm(dim=-1))


def test_neuron_alignment_is_saedashboards(tmp_path):
    sae = make_sae("standard", d_in=24, d_sae=40, seed=11)
    lens = _lens_sae(sae, tmp_path / "s")
    lens.fold_W_dec_norm()
    expected: dict = {}
    add_neuron_alignment_data(lens.W_dec.detach(), expected, n_rows=3)
    ours = neuron_alignment(folded_decoder(sae))
    assert ours["neuron_alignment_indices"].tolist() == expected["neuron_alignment_indices"]
    np.testing.assert_allclose(ours["neuron_alignment_values"].numpy(), expected["neuron_alignment_values"],
                               rtol=1e-6)
    np.testing.assert_allclose(ours["neuron_alignment_l1"].numpy(), expected["neuron_alignment_l1"], rtol=1e-6)


def test_decoder_cosine_topk_streams_and_equals_the_full_matrix():
    g = torch.Generator().manual_seed(5)
    W = torch.randn(53, 12, generator=g) * (torch.rand(53, 1, generator=g) + 0.1)
    W[7] = W[3] * 2.5 + 0.01 * torch.randn(12, generator=g)  # nearly parallel: each other's nearest neighbour
    W[20] = float("nan")
    W[31] = 0.0
    values, indices = decoder_cosine_topk(W, chunk=7, block=13)  # running top-k across column blocks
    assert values.shape == indices.shape == (53, 10) and values.dtype == torch.float32
    w = W.double().numpy()
    norms = np.linalg.norm(w, axis=1)
    cos = (w @ w.T) / np.maximum(np.outer(norms, norms), 1e-8)
    cos = np.where(np.isnan(cos), -np.inf, cos)
    for row in range(53):
        if row in (20, 31):  # all -inf (reported 0.0) / all 0: every order is a tie
            assert values[row].tolist() == [0.0] * 10
            continue
        order = np.argsort(-cos[row], kind="stable")[:10]
        assert indices[row].tolist() == order.tolist()
        np.testing.assert_allclose(values[row].numpy(), cos[row][order], atol=1e-6)
        assert 20 not in indices[row].tolist()
    assert indices[3, :2].tolist() == [3, 7] and indices[7, :2].tolist() == [7, 3]  # self included
    real = [row for row in range(53) if row not in (20, 31)]
    whole_values, whole_indices = decoder_cosine_topk(W)
    assert torch.equal(whole_indices[real], indices[real])
    sub_values, sub_indices = decoder_cosine_topk(W, rows=slice(10, 30), chunk=4)
    sub = [row - 10 for row in real if 10 <= row < 30]
    assert torch.equal(sub_indices[sub], indices[10:30][sub]) and torch.allclose(sub_values, values[10:30])


def test_histc_rows_are_torch_histc_and_saedashboards_bar_values():
    g = torch.Generator().manual_seed(2)
    rows = torch.randn(40, 997, generator=g) * torch.rand(40, 1, generator=g) * 7
    rows[0] = 0.25  # one value: histc widens the range to [v - 1, v + 1]
    rows[1, :5] = rows[1].max()
    lo, hi = rows.amin(1), rows.amax(1)
    counts = histc_counts(rows, lo, hi, 50)
    values = histc_bar_values(lo.tolist(), hi.tolist(), 50)
    for i, row in enumerate(rows):
        assert counts[i].tolist() == torch.histc(row, bins=50).int().tolist()
        expected = LogitsHistogramData.from_data(data=row, n_bins=50, tickmode="5 ticks", title=None)
        assert [round(float(v), 5) for v in values[i]] == expected.bar_values
        assert counts[i].tolist() == expected.bar_heights


def _saedashboard_logits(tl, hook: str, folded: torch.Tensor) -> list[dict]:
    """SAEDashboard's per-feature logit data: to_resid_direction on the wrapped TransformerLens model, @ W_U,
    then its histogram and logits table."""
    wrapper = TransformerLensWrapper(tl, ActivationConfig(primary_hook_point=hook, auxiliary_hook_points=[]))
    resid = to_resid_direction(folded, wrapper)
    logits = resid.to(tl.W_U.dtype) @ tl.W_U
    out = []
    for logit_vector in logits:
        hist = LogitsHistogramData.from_data(data=logit_vector.float(), n_bins=50, tickmode="5 ticks", title=None)
        table = get_logits_table_data(logit_vector=logit_vector, n_rows=10)
        out.append({"hist": hist, "table": table})
    return out


def _assert_neuronpedia_logits(ours: dict[str, torch.Tensor], expected: list[dict]) -> None:
    for f, ref in enumerate(expected):
        table, hist = ref["table"], ref["hist"]
        assert ours["logit_pos_ids"][f].tolist() == table.top_token_ids
        assert ours["logit_neg_ids"][f].tolist() == table.bottom_token_ids
        np.testing.assert_allclose(ours["logit_pos_values"][f].numpy(), table.top_logits, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours["logit_neg_values"][f].numpy(), table.bottom_logits, rtol=1e-5, atol=1e-6)
        assert ours["logit_hist_heights"][f].tolist() == hist.bar_heights
        np.testing.assert_allclose([round(float(v), 5) for v in ours["logit_hist_values"][f]], hist.bar_values,
                                   atol=2e-5)


def _randomise_final_norm(norm: torch.nn.Module, seed: int) -> None:
    """Random final-norm gains (and bias), so folding them in or not changes the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(norm.weight.shape, generator=g) * 0.5 + 0.5)
        if getattr(norm, "bias", None) is not None:
            norm.bias.copy_(torch.randn(norm.bias.shape, generator=g) * 0.1)


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    path = build_tiny_model("gpt2", tmp_path_factory.mktemp("npw_gpt") / "model")
    loaded = load_model(str(path), device="cpu", dtype="float32")
    _randomise_final_norm(loaded.model.transformer.ln_f, 1)
    return path, loaded


@pytest.fixture(scope="module")
def rms_model(tmp_path_factory):
    """A Gemma-2-shaped model (RMSNorm with 1 + w gains, tied embeddings, a final logit softcap); the path must
    not say 'gemma'."""
    path = build_tiny_model("gemma2", tmp_path_factory.mktemp("npw_rms") / "model")
    loaded = load_model(str(path), device="cpu", dtype="float32")
    _randomise_final_norm(loaded.model.model.norm, 2)
    return path, loaded


def _d_mlp(loaded) -> int:
    config = loaded.model.config
    return int(getattr(config, "n_inner", None) or getattr(config, "intermediate_size", None)
               or 4 * loaded.d_model)


def _runner_tl_model(path: Path, loaded, kwargs: dict):
    """The TransformerLens model NeuronpediaRunner builds: `from_pretrained`'s processing defaults overridden by
    the SAE's `model_from_pretrained_kwargs`, with from_pretrained's own rule that a logit softcap turns
    `center_unembed` off."""
    from transformer_lens.utilities.activation_functions import softcap_enabled

    flags = {"fold_ln": True, "center_writing_weights": True, "center_unembed": True, "fold_value_biases": True,
             **kwargs}
    if softcap_enabled(_tl_config(path, loaded.model.config).output_logits_soft_cap):
        flags["center_unembed"] = False
    key = (str(path), tuple(sorted(flags.items())))
    if key not in _TL_MODELS:
        _TL_MODELS[key] = tl_model(path, loaded, **flags)
    return _TL_MODELS[key]


CASES = {  # name → (TransformerLens hook for SAEDashboard, our hf_hook_name or None, width, SAE kwargs)
    "resid": ("blocks.1.hook_resid_post", None, "d_model", {}),
    "hook_z": ("blocks.1.attn.hook_z", None, "heads", {}),
    "hook_z_uncentred": ("blocks.0.attn.hook_z", None, "heads", {"center_writing_weights": False}),
    # without fold_ln W_U is not mean-free over d_model, so centring W_O shows
    "hook_z_no_fold_ln": ("blocks.1.attn.hook_z", None, "heads", {"fold_ln": False}),
    "mlp_post": ("blocks.1.mlp.hook_post", "mlp_down", "d_mlp", {}),
    "resid_no_fold_ln": ("blocks.0.hook_resid_pre", None, "d_model", {"fold_ln": False}),
    "resid_raw": ("blocks.1.hook_resid_post", None, "d_model", {"fold_ln": False, "center_unembed": False}),
}
_TL_MODELS: dict = {}  # one TransformerLens model per (model, processing) for the whole module
_DOWN = {"gpt2": "transformer.h.1.mlp.c_proj.input", "gemma2": "model.layers.1.mlp.down_proj.input"}


@pytest.mark.parametrize("family", ["gpt2", "gemma2"])
@pytest.mark.parametrize("case", list(CASES))
def test_neuronpedia_logit_lens_is_saedashboards(case, family, gpt2, rms_model):
    path, loaded = gpt2 if family == "gpt2" else rms_model
    tl_hook, hf_hook, width_kind, kwargs = CASES[case]
    width = {"d_model": loaded.d_model, "heads": loaded.n_heads * loaded.d_head, "d_mlp": _d_mlp(loaded)}[width_kind]
    sae = _random_sae(width, 24, tl_hook, seed=len(case), model_from_pretrained_kwargs=kwargs,
                      hf_hook_name=_DOWN[family] if hf_hook else None)
    assert lens_basis(sae, loaded).basis is not None
    tl = _runner_tl_model(path, loaded, kwargs)
    expected = _saedashboard_logits(tl, tl_hook, folded_decoder(sae)[:8])  # its histogram is slow: 8 features
    ours = neuronpedia_weights(loaded, sae, chunk=3)  # several row chunks
    _assert_neuronpedia_logits(ours, expected)


def test_the_conventions_differ_where_they_should(gpt2, rms_model):
    """Neuronpedia's W_U (TransformerLens-processed) against our dashboard's (gain folded, not centred) and the
    raw head: the same ranking as ours where only centring differs, another one without the gain."""
    for loaded in (gpt2[1], rms_model[1]):
        sae = _random_sae(loaded.d_model, 24, "blocks.1.hook_resid_post", seed=8)
        folded = folded_decoder(sae) @ logit_lens_matrix(loaded)
        raw = folded_decoder(sae) @ loaded.model.get_output_embeddings().weight.detach().T
        ours = neuronpedia_weights(loaded, sae)
        assert ours["logit_pos_ids"].tolist() == torch.topk(folded, 10).indices.tolist()
        assert ours["logit_pos_ids"].tolist() != torch.topk(raw, 10).indices.tolist()
        shift = ours["logit_pos_values"] - torch.topk(folded, 10).values  # centring over the vocab: a constant
        centred = loaded.family == "gpt2"  # Gemma-2's logit softcap keeps TransformerLens from centring
        torch.testing.assert_close(shift, -folded.mean(1, keepdim=True).expand_as(shift) if centred
                                   else torch.zeros_like(shift), atol=1e-5, rtol=1e-5)


def test_write_neuronpedia_weights_stores_the_part(gpt2, tmp_path):
    _, loaded = gpt2
    sae = _random_sae(loaded.d_model, 12, "blocks.1.hook_resid_post", seed=3,
                      normalize_activations="expected_average_only_in")
    store = FeatureStore.create(tmp_path / "store", {"settings_key": "k", "n_features": 12,
                                                     "normalization": {"factor": 4.0}})
    write_neuronpedia_weights(store, loaded, sae)  # a re-loaded SAE: the extraction's decoder is W_dec / 4
    part = FeatureStore.open(tmp_path / "store").read_part(PART)
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in part.items()}
    assert shapes == {
        "fold": ((12,), torch.float32),
        "neuron_alignment_indices": ((12, 3), torch.int64), "neuron_alignment_values": ((12, 3), torch.float32),
        "neuron_alignment_l1": ((12, 3), torch.float32),
        "cos_indices": ((12, 10), torch.int64), "cos_values": ((12, 10), torch.float32),
        "logit_pos_ids": ((12, 10), torch.int64), "logit_pos_values": ((12, 10), torch.float32),
        "logit_neg_ids": ((12, 10), torch.int64), "logit_neg_values": ((12, 10), torch.float32),
        "logit_hist_heights": ((12, 50), torch.int64), "logit_hist_values": ((12, 50), torch.float32)}
    torch.testing.assert_close(part["fold"], sae.W_dec.detach().norm(dim=-1) / 4.0)
    assert part["cos_indices"][:, 0].tolist() == list(range(12))
    assert (part["logit_hist_heights"].sum(1) == loaded.model.lm_head.weight.shape[0]).all()
    manifest = FeatureStore.open(tmp_path / "store").manifest
    assert manifest[PART]["logit_lens"]["convention"] == "neuronpedia"
    assert manifest[PART]["logit_lens"]["basis"] == "residual" and manifest["parts"][PART]


def test_an_sae_without_a_logit_lens_gets_empty_logit_rows(gpt2):
    _, loaded = gpt2
    sae = _random_sae(loaded.d_model, 9, "blocks.0.attn.hook_q", seed=2)
    ours = neuronpedia_weights(loaded, sae)
    assert ours["logit_pos_ids"].shape == (9, 0) and ours["logit_hist_heights"].shape == (9, 0)
    assert ours["neuron_alignment_indices"].shape == (9, 3) and ours["cos_indices"].shape == (9, 9)
