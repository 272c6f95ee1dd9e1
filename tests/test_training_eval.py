"""Held-out evaluation (`training.evaluate.evaluate_sae`) against two oracles: a brute-force computation written
here (the HF model run with a plain forward hook replacing the activation, CE/KL/variance by hand with
torch.nn.functional), and SAELens's own `evals.py` functions run on a TransformerLens HookedTransformer holding
the same tiny GPT-2 weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sae_factories import make_sae

from mistudio.errors import InvalidInputError
from mistudio.lm.loading import LoadedModel, load_model
from mistudio.lm.patching import ActivationPatch
from mistudio.saes.model import SAE, SAEConfig
from mistudio.testing.tiny_models import build_tiny_model
from mistudio.training.evaluate import DENSITY_EDGES, evaluate_sae, excluded_token_ids

D = 64


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LoadedModel, torch.Tensor]:
    path = build_tiny_model("gpt2", tmp_path_factory.mktemp("tiny") / "model", n_layers=2, d_model=D)
    loaded = load_model(path, device="cpu", dtype="float32")
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, loaded.vocab_size, (6, 24), generator=gen)
    bos = loaded.tokenizer.bos_token_id
    tokens[:, 0] = bos  # every window starts with BOS, and a document boundary inside some
    tokens[1, 9] = bos
    tokens[4, 17] = bos
    return path, loaded, tokens


def _sae(d_sae: int = 96, hook: str = "blocks.0.hook_resid_post", seed: int = 0, **kw: Any) -> SAE:
    return make_sae("standard", d_in=kw.pop("d_in", D), d_sae=d_sae, seed=seed, hook_name=hook, **kw)


def _mask(loaded: LoadedModel, tokens: torch.Tensor) -> torch.Tensor:
    special = [t for t in (loaded.tokenizer.bos_token_id, loaded.tokenizer.eos_token_id,
                           loaded.tokenizer.pad_token_id) if t is not None]
    return ~torch.isin(tokens, torch.tensor(special))


# ----- the brute-force oracle ---------------------------------------------------------------------------------


def _run(loaded: LoadedModel, tokens: torch.Tensor, module: torch.nn.Module | None = None, replace: Any = None,
         pre: bool = False) -> torch.Tensor:
    """Logits of the HF model, with `replace(value, inputs)` substituted at `module` (its output, or its first
    input with `pre`)."""
    handle = None
    if module is not None:
        if pre:
            handle = module.register_forward_pre_hook(lambda m, args: (replace(args[0], args), *args[1:]))
        else:
            def post(m: torch.nn.Module, args: tuple, out: Any) -> Any:
                if isinstance(out, tuple):
                    return (replace(out[0], args), *out[1:])
                return replace(out, args)
            handle = module.register_forward_hook(post)
    try:
        with torch.no_grad():
            return loaded.model(input_ids=tokens).logits.double()
    finally:
        if handle is not None:
            handle.remove()


def _brute_force(loaded: LoadedModel, tokens: torch.Tensor, module: torch.nn.Module, sae_fn: Any, *,
                 pre: bool = False, read: Any = None, write: Any = None, zero: Any = None,
                 mask: torch.Tensor | None = None) -> dict[str, Any]:
    """Every metric computed directly: `read(value, inputs) -> (x, target)` the SAE's input and target at the
    module, `write(value, new, mask)` the spliced value; sae_fn(x) -> (features, recon)."""
    mask = _mask(loaded, tokens) if mask is None else mask
    read = read or (lambda value, args: (value, value))
    write = write or (lambda value, new, m: torch.where(m.unsqueeze(-1), new, value))
    zero = zero or (lambda value: torch.zeros_like(value))
    seen: dict[str, torch.Tensor] = {}

    def splice(value: torch.Tensor, args: tuple) -> torch.Tensor:
        x, target = read(value, args)
        f, recon = sae_fn(x)
        seen.update(f=f, recon=recon, target=target)
        return write(value, recon, mask)

    clean = _run(loaded, tokens)
    spliced = _run(loaded, tokens, module, splice, pre)
    zeroed = _run(loaded, tokens, module, lambda v, a: zero(v), pre)
    f, recon, target = (seen[k][mask].double() for k in ("f", "recon", "target"))

    def ce(logits: torch.Tensor) -> float:
        losses = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                                 reduction="none").view(tokens.shape[0], -1)
        return float(losses[mask[:, :-1]].mean())

    def kl(logits: torch.Tensor) -> float:
        p = F.softmax(clean, -1)
        per = (p * (F.log_softmax(clean, -1) - F.log_softmax(logits, -1))).sum(-1)
        return float(per[mask].mean())

    density = (f != 0).double().mean(0)
    err = (target - recon).square().sum(-1)
    total_var = (target - target.mean(0)).square().sum()
    counts, _ = np.histogram(np.clip(np.log10(density.numpy() + 1e-10), -10, 0), bins=np.array(DENSITY_EDGES))
    ce_clean, ce_sae, ce_zero = ce(clean), ce(spliced), ce(zeroed)
    norm_in, norm_out = target.norm(dim=-1), recon.norm(dim=-1)
    return {
        "n_tokens": int(mask.sum()), "l0": float((f != 0).sum(-1).double().mean()), "l1": float(f.abs().sum(-1).mean()),
        "mse": float(err.mean()), "mse_per_element": float(err.mean()) / target.shape[-1],
        "explained_variance": 1 - float(err.sum() / total_var),
        "cossim": float(F.cosine_similarity(target, recon, dim=-1).mean()),
        "l2_norm_in": float(norm_in.mean()), "l2_norm_out": float(norm_out.mean()),
        "l2_ratio": float((norm_out / norm_in).mean()),
        "relative_reconstruction_bias": float(norm_out.square().sum() / (target * recon).sum()),
        "dead_fraction": float((density == 0).double().mean()), "dense_fraction": float((density > 0.1).double().mean()),
        "ce_loss_clean": ce_clean, "ce_loss_sae": ce_sae, "ce_loss_zero": ce_zero,
        "ce_loss_recovered": (ce_zero - ce_sae) / (ce_zero - ce_clean),
        "kl_div": kl(spliced), "kl_div_zero": kl(zeroed), "kl_div_score": (kl(zeroed) - kl(spliced)) / kl(zeroed),
        "histogram": counts.tolist(), "density": density,
    }


def _assert_matches(ours: Any, want: dict[str, Any], atol: float = 1e-5) -> None:
    got = ours.model_dump()
    for key, value in want.items():
        if key == "histogram":
            assert got["density_histogram"]["counts"] == value
        elif key == "density":
            torch.testing.assert_close(torch.tensor(ours.feature_density, dtype=torch.float64), value)
        else:
            assert got[key] == pytest.approx(value, abs=atol, rel=1e-4), key


def _sae_fn(sae: SAE) -> Any:
    return lambda x: (sae.encode(x), sae(x))


# ----- tests --------------------------------------------------------------------------------------------------


def test_sae_metrics_equal_brute_force(gpt2):
    _, loaded, tokens = gpt2
    sae = _sae()
    ours = evaluate_sae(loaded, sae, tokens, hook="blocks.0.hook_resid_post", batch_size=4)
    want = _brute_force(loaded, tokens, loaded.model.transformer.h[0], _sae_fn(sae))
    _assert_matches(ours, want)
    assert 0 < ours.l0 < sae.cfg.d_sae and ours.dead_fraction + ours.dense_fraction > 0
    assert sum(ours.density_histogram.counts) == sae.cfg.d_sae
    assert len(ours.density_histogram.edges) == len(ours.density_histogram.counts) + 1
    assert "feature_density" not in ours.model_dump()
    # the periodic, capture-only evaluation gives the same reconstruction metrics without CE/KL
    quick = evaluate_sae(loaded, sae, tokens, hook="blocks.0.hook_resid_post", batch_size=3, compute_ce=False)
    assert quick.ce_loss_recovered is None and quick.kl_div is None
    assert quick.explained_variance == pytest.approx(ours.explained_variance, abs=1e-9)
    assert quick.l0 == pytest.approx(ours.l0)


def _identity_sae(hook: str, d: int = D) -> SAE:
    """relu(x) − relu(−x) = x: a perfect reconstruction."""
    sae = SAE(SAEConfig(d_in=d, d_sae=2 * d, hook_name=hook, apply_b_dec_to_input=False))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_perfect_reconstruction_recovers_all_and_zero_recovers_nothing(gpt2):
    _, loaded, tokens = gpt2
    hook = "blocks.1.hook_resid_pre"
    perfect = evaluate_sae(loaded, _identity_sae(hook), tokens, hook=hook)
    assert perfect.explained_variance == pytest.approx(1.0, abs=1e-6)
    assert perfect.ce_loss_recovered == pytest.approx(1.0, abs=1e-5)
    assert perfect.kl_div == pytest.approx(0.0, abs=1e-6) and perfect.kl_div_score == pytest.approx(1.0, abs=1e-5)
    assert perfect.l2_ratio == pytest.approx(1.0) and perfect.cossim == pytest.approx(1.0)
    zero = _identity_sae(hook)
    with torch.no_grad():
        zero.W_dec.zero_()
    # every position replaced (no special tokens left out), as the ablation replaces every position
    nothing = evaluate_sae(loaded, zero, tokens, hook=hook, exclude_special_tokens=False)
    assert nothing.ce_loss_recovered == pytest.approx(0.0, abs=1e-6)
    assert nothing.ce_loss_sae == pytest.approx(nothing.ce_loss_zero, abs=1e-6)
    assert nothing.kl_div_score == pytest.approx(0.0, abs=1e-6)
    assert nothing.explained_variance < 0 and nothing.l2_norm_out == pytest.approx(0.0)


def test_transcoder_is_spliced_at_its_output(gpt2):
    _, loaded, tokens = gpt2
    cfg = SAEConfig(d_in=D, d_sae=80, d_out=D, hook_name="blocks.0.mlp.hook_in", hook_name_out="blocks.0.mlp.hook_out",
                    apply_b_dec_to_input=False)
    tc = SAE(cfg)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in tc.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    ours = evaluate_sae(loaded, tc, tokens, hook="blocks.0.mlp.hook_in", hook_out="blocks.0.mlp.hook_out")

    def read(value: torch.Tensor, args: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        return args[0], value  # the MLP's input is the transcoder's; its output the target

    def fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return tc.encode(x), tc(x)

    want = _brute_force(loaded, tokens, loaded.model.transformer.h[0].mlp, fn, read=read)
    _assert_matches(ours, want)
    with pytest.raises(InvalidInputError, match="hook_out"):
        evaluate_sae(loaded, tc, tokens, hook="blocks.0.mlp.hook_in")


@pytest.mark.parametrize("head_index", [None, 1])
def test_hook_z_per_head(gpt2, head_index):
    _, loaded, tokens = gpt2
    n_heads, d_head = loaded.n_heads, loaded.d_head
    d_in = d_head if head_index is not None else n_heads * d_head
    sae = _sae(d_sae=48, hook="blocks.1.attn.hook_z", d_in=d_in, seed=2)
    sae.cfg.hook_head_index = head_index
    ours = evaluate_sae(loaded, sae, tokens, hook="blocks.1.attn.hook_z")
    heads = lambda v: v.view(*v.shape[:-1], n_heads, d_head)  # noqa: E731

    def read(value: torch.Tensor, args: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        x = heads(value)[..., head_index, :] if head_index is not None else value
        return x, x

    def write(value: torch.Tensor, new: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        if head_index is None:
            return torch.where(m.unsqueeze(-1), new, value)
        out = heads(value).clone()
        out[..., head_index, :] = torch.where(m.unsqueeze(-1), new, out[..., head_index, :])
        return out.view(value.shape)

    def zero(value: torch.Tensor) -> torch.Tensor:
        if head_index is None:
            return torch.zeros_like(value)
        out = heads(value).clone()
        out[..., head_index, :] = 0
        return out.view(value.shape)

    want = _brute_force(loaded, tokens, loaded.model.transformer.h[1].attn.c_proj, _sae_fn(sae), pre=True,
                        read=read, write=write, zero=zero)
    _assert_matches(ours, want)


def test_norm_factor_gives_model_units(gpt2):
    """An SAE trained on activations × c, evaluated with norm_factor=c, equals the same SAE with c folded in."""
    _, loaded, tokens = gpt2
    raw = _sae(seed=4)
    folded = _sae(seed=4)
    folded.fold_activation_norm_scaling_factor(2.5)
    a = evaluate_sae(loaded, raw, tokens, hook="blocks.0.hook_resid_post", norm_factor=2.5)
    b = evaluate_sae(loaded, folded, tokens, hook="blocks.0.hook_resid_post")
    for key, value in b.model_dump().items():
        if isinstance(value, float):
            assert a.model_dump()[key] == pytest.approx(value, abs=1e-5, rel=1e-4), key
    assert a.density_histogram == b.density_histogram


def test_bad_input_is_refused(gpt2):
    _, loaded, tokens = gpt2
    with pytest.raises(InvalidInputError, match="not supported for writing"):
        evaluate_sae(loaded, _sae(hook="blocks.0.ln1.hook_normalized"), tokens, hook="blocks.0.ln1.hook_normalized")
    with pytest.raises(InvalidInputError, match="32-wide"):
        evaluate_sae(loaded, _sae(d_in=32), tokens, hook="blocks.0.hook_resid_post")
    with pytest.raises(InvalidInputError, match="windows"):
        evaluate_sae(loaded, _sae(), tokens[0], hook="blocks.0.hook_resid_post")
    with pytest.raises(InvalidInputError, match="batch_size"):
        evaluate_sae(loaded, _sae(), tokens, hook="blocks.0.hook_resid_post", batch_size=0)


def test_patch_writes_every_writable_hook(gpt2):
    """Writing the captured value back changes nothing; writing zeros at a hook is seen by capture at that hook."""
    from mistudio.lm.hooks import capture_many

    _, loaded, tokens = gpt2
    hooks = ["hook_embed", "blocks.0.hook_resid_pre", "blocks.0.hook_attn_out", "blocks.0.hook_mlp_in",
             "blocks.0.hook_mlp_out", "blocks.0.mlp.hook_in", "blocks.0.mlp.hook_out", "blocks.0.attn.hook_z",
             "blocks.1.hook_resid_post", "transformer.h.0.mlp.c_fc.output"]
    clean = _run(loaded, tokens)
    for hook in hooks:
        with ActivationPatch(loaded, hook, lambda v: v.clone()).installed():
            torch.testing.assert_close(_run(loaded, tokens), clean, msg=hook)
        with ActivationPatch(loaded, hook, lambda v: torch.full_like(v, 0.5)).installed():
            seen = capture_many(loaded, tokens, None, [hook])[hook]
            assert bool((seen == 0.5).all()), hook
            assert not torch.allclose(_run(loaded, tokens), clean), hook


# ----- SAELens's own evals.py on a HookedTransformer with the same weights --------------------------------------


class _Batches:
    """The one method SAELens's eval functions call on their activation store: the next batch of token windows."""

    def __init__(self, tokens: torch.Tensor) -> None:
        self.tokens = tokens

    def get_batch_tokens(self, batch_size: int) -> torch.Tensor:
        assert batch_size == self.tokens.shape[0]
        return self.tokens


@pytest.mark.filterwarnings("ignore:HookedTransformer is deprecated:DeprecationWarning")
def test_metrics_equal_saelens_evals(gpt2, tmp_path):
    pytest.importorskip("transformer_lens")
    from sae_lens import SAE as LensSAE
    from sae_lens.evals import get_downstream_reconstruction_metrics, get_sparsity_and_variance_metrics
    from sae_lens.training.activation_scaler import ActivationScaler
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens import loading_from_pretrained as tl_loading

    from mistudio.saes.formats import write_saelens

    path, loaded, tokens = gpt2
    hook = "blocks.0.hook_resid_post"
    sae = _sae(seed=7, hook=hook)
    lens_sae = LensSAE.load_from_disk(str(write_saelens(sae, tmp_path / "sae")), device="cpu")
    cfg = tl_loading.convert_hf_model_config(str(path))
    cfg.update(model_name="tiny", tokenizer_name=str(path), init_weights=False, device="cpu", dtype=torch.float32,
               n_devices=1, default_prepend_bos=True, from_checkpoint=False)
    tl_cfg = HookedTransformerConfig.from_dict(cfg)
    model = HookedTransformer(tl_cfg, move_to_device=False)
    model.load_and_process_state_dict(tl_loading.get_pretrained_state_dict(str(path), tl_cfg, loaded.model),
                                      fold_ln=False, center_writing_weights=False, center_unembed=False,
                                      fold_value_biases=False)
    model.eval()
    ignore = excluded_token_ids(loaded.tokenizer, True)
    n = tokens.shape[0]
    downstream = get_downstream_reconstruction_metrics(
        lens_sae, model, _Batches(tokens), ActivationScaler(), compute_kl=True, compute_ce_loss=True,
        n_batches=1, eval_batch_size_prompts=n, ignore_tokens=ignore)
    sparsity, per_feature = get_sparsity_and_variance_metrics(
        lens_sae, model, _Batches(tokens), ActivationScaler(), n_batches=1, compute_l2_norms=True,
        compute_sparsity_metrics=True, compute_variance_metrics=True, compute_featurewise_density_statistics=True,
        eval_batch_size_prompts=n, model_kwargs={}, ignore_tokens=ignore)
    ours = evaluate_sae(loaded, sae, tokens, hook=hook, batch_size=4)
    pairs = {"ce_loss_clean": "ce_loss_without_sae", "ce_loss_sae": "ce_loss_with_sae",
             "ce_loss_zero": "ce_loss_with_ablation", "ce_loss_recovered": "ce_loss_score",
             "kl_div": "kl_div_with_sae", "kl_div_zero": "kl_div_with_ablation", "kl_div_score": "kl_div_score"}
    for key, theirs in pairs.items():
        assert getattr(ours, key) == pytest.approx(downstream[theirs], abs=1e-4, rel=1e-4), key
    for key in ("l0", "l1", "mse", "cossim", "explained_variance", "l2_norm_in", "l2_norm_out", "l2_ratio",
                "relative_reconstruction_bias"):
        assert getattr(ours, key) == pytest.approx(sparsity[key], abs=1e-4, rel=1e-4), key
    np.testing.assert_allclose(ours.feature_density, per_feature["feature_density"], atol=1e-6)



def test_parallel_attention_mlp_input_is_not_writable(tmp_path):
    """Pythia runs attention and MLP in parallel: its hook_mlp_in is the block's input, which patching refuses."""
    loaded = load_model(build_tiny_model("pythia", tmp_path / "pythia", n_layers=1, d_model=32), device="cpu")
    with pytest.raises(InvalidInputError, match="parallel"):
        ActivationPatch(loaded, "blocks.0.hook_mlp_in", lambda v: v)
    with pytest.raises(InvalidInputError, match="not supported for writing"):
        ActivationPatch(loaded, "blocks.0.attn.hook_q", lambda v: v)
    ActivationPatch(loaded, "blocks.0.hook_resid_pre", lambda v: v)  # the block's input as the residual stream
