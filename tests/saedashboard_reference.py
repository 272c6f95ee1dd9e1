"""SAEDashboard's own Neuronpedia pipeline on a tiny model: the reference for everything we send to Neuronpedia.

`saedashboard_features` does what `sae_dashboard.neuronpedia.neuronpedia_runner.NeuronpediaRunner.run` does once it
has its model, SAE and tokens: the SAE loaded by SAELens from a SAELens folder and folded (`fold_W_dec_norm`), the
features split into batches with `np.array_split` (128 per batch), and for each batch `SaeVisRunner` configured with
the runner's layout (`SequencesConfig(stack_mode="stack-all", buffer=None, compute_buffer=True, n_quantiles=5,
top_acts_group_size=20, quantile_group_size=5)`, the acts/logits histograms, the logits table, `FeatureTablesConfig
(n_rows=3)`), `ignore_tokens = {pad, bos, eos}`, then `NeuronpediaConverter.convert_to_np_json` with the runner's
vocabulary (`NeuronpediaRunner.get_vocab_dict`). Nothing of SAEDashboard is re-implemented or patched; the runner
itself is not constructed only because its constructor downloads the model by name and streams a dataset.

The model is built as `NeuronpediaRunner._initialize_model` builds it: `HookedSAETransformer.from_pretrained(model,
hf_model=…, **sae.cfg.model_from_pretrained_kwargs)`, i.e. TransformerLens's default weight processing (fold_ln,
center_writing_weights, center_unembed, fold_value_biases) overridden by the SAE's kwargs, here on the tiny HF
model's weights (`runner_model`).

`reference_activations` is an independent encode (TransformerLens's hook activations, SAELens's folded SAE,
SAEDashboard's masking rule) used to check examples that SAEDashboard samples at random.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

N_FEATURES_AT_A_TIME = 128  # NeuronpediaRunnerConfig.n_features_at_a_time
N_PROMPTS_IN_FORWARD_PASS = 32  # NeuronpediaRunnerConfig.n_prompts_in_forward_pass
QUANTILE_FEATURE_BATCH_SIZE = 64  # NeuronpediaRunnerConfig.quantile_feature_batch_size


@dataclass
class Reference:
    """SAEDashboard's output for one SAE: the parsed batch files and the per-feature dicts."""

    batches: list[dict[str, Any]]  # each a parsed `batch-{k}.json` (NeuronpediaDashboardBatch)
    feature_batches: list[list[int]]  # the features of each batch, as the runner splits them
    model: Any  # the HookedTransformer it ran on (runner_model)

    @property
    def features(self) -> dict[int, dict[str, Any]]:
        """`feature_index` → the feature's dict (NeuronpediaDashboardFeature.to_dict())."""
        return {f["feature_index"]: f for batch in self.batches for f in batch["features"]}


# TransformerLens's `from_pretrained` defaults (what NeuronpediaRunner gets unless the SAE's kwargs say otherwise)
RUNNER_PROCESSING = {"fold_ln": True, "center_writing_weights": True, "center_unembed": True,
                     "fold_value_biases": True}


def runner_model(model_dir: Path, loaded: Any, model_from_pretrained_kwargs: dict[str, Any] | None = None) -> Any:
    """The tiny HF model's weights in a TransformerLens `HookedTransformer`, processed as
    `HookedTransformer.from_pretrained(**model_from_pretrained_kwargs)` processes them, including the flags
    `from_pretrained` itself turns off: no fold_ln / centring for shortformer and post-norm architectures, no
    `center_unembed` for models with a logit softcap (Gemma 2). `load_and_process_state_dict` skips centring the
    residual stream of RMSNorm models itself."""
    from test_lm_parity import _tl_config, tl_model
    from transformer_lens.utilities.activation_functions import softcap_enabled
    from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

    kwargs = dict(model_from_pretrained_kwargs or {})
    unknown = set(kwargs) - set(RUNNER_PROCESSING)
    assert not unknown, f"model_from_pretrained_kwargs the harness does not build: {sorted(unknown)}"
    flags = {**RUNNER_PROCESSING, **kwargs}
    cfg = _tl_config(model_dir, loaded.model.config)
    if cfg.positional_embedding_type == "shortformer":
        flags.update(fold_ln=False, center_unembed=False, center_writing_weights=False)
    if cfg.original_architecture in POST_NORM_ARCHITECTURES:
        flags.update(fold_ln=False, center_writing_weights=False)
    if softcap_enabled(cfg.output_logits_soft_cap):
        flags["center_unembed"] = False
    return tl_model(model_dir, loaded, **flags)


def sae_pretrained_kwargs(sae_dir: Path) -> dict[str, Any]:
    """`model_from_pretrained_kwargs` as NeuronpediaRunner reads it (`sae.cfg.to_dict()`)."""
    from sae_lens import SAE as LensSAE

    return dict(LensSAE.load_from_disk(str(sae_dir), device="cpu").cfg.to_dict().get(
        "model_from_pretrained_kwargs") or {})


def load_lens_sae(sae_dir: Path, *, fold: bool = True) -> Any:
    """The SAE as SAEDashboard gets it: `SAE.load_from_disk` then `fold_W_dec_norm()` (NeuronpediaRunner folds it
    after loading, SaeVisRunner.run folds it again, a no-op on unit-norm rows). `fold=False` replaces the instance's
    `fold_W_dec_norm` by a no-op, for SAEs SAELens refuses to fold (topk without `rescale_acts_by_decoder_norm`):
    SAEDashboard itself raises NotImplementedError on those."""
    from sae_lens import SAE as LensSAE

    sae = LensSAE.load_from_disk(str(sae_dir), device="cpu")
    if fold:
        sae.fold_W_dec_norm()
    else:
        sae.fold_W_dec_norm = types.MethodType(lambda self: None, sae)
    return sae


def feature_batches(d_sae: int, per_batch: int = N_FEATURES_AT_A_TIME) -> list[list[int]]:
    """NeuronpediaRunner.get_feature_batches: `np.array_split(range(d_sae), ceil(d_sae / per_batch))`."""
    from sae_dashboard.neuronpedia.neuronpedia_runner import NeuronpediaRunner

    runner = types.SimpleNamespace(target_feature_indexes=list(range(d_sae)),
                                   cfg=types.SimpleNamespace(n_features_at_a_time=per_batch))
    return NeuronpediaRunner.get_feature_batches(runner)  # type: ignore[arg-type]


def ignore_tokens(model: Any) -> set[int]:
    """The token ids NeuronpediaRunner masks: the tokenizer's pad, bos and eos ids."""
    tok = model.tokenizer
    return {tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}


def saedashboard_features(model_dir: Path, loaded: Any, sae_dir: Path, tokens: torch.Tensor, *, fold: bool = True,
                          per_batch: int = N_FEATURES_AT_A_TIME, dataset: str = "") -> Reference:
    """Run SaeVisRunner + NeuronpediaConverter as NeuronpediaRunner.run does, on `tokens` `[n_prompts, ctx]`, with
    the model `runner_model` builds for the SAE's `model_from_pretrained_kwargs`."""
    from sae_dashboard.components_config import (
        ActsHistogramConfig,
        Column,
        FeatureTablesConfig,
        LogitsHistogramConfig,
        LogitsTableConfig,
        SequencesConfig,
    )
    from sae_dashboard.layout import SaeVisLayoutConfig
    from sae_dashboard.neuronpedia.neuronpedia_converter import NeuronpediaConverter
    from sae_dashboard.neuronpedia.neuronpedia_runner import NeuronpediaRunner
    from sae_dashboard.neuronpedia.neuronpedia_runner_config import NeuronpediaRunnerConfig
    from sae_dashboard.sae_vis_data import SaeVisConfig
    from sae_dashboard.sae_vis_runner import SaeVisRunner
    from sae_dashboard.utils_fns import has_duplicate_rows

    model = runner_model(model_dir, loaded, sae_pretrained_kwargs(sae_dir))
    tokens = tokens.long()
    assert not has_duplicate_rows(tokens), "NeuronpediaRunner.get_tokens refuses duplicate prompts"
    sae = load_lens_sae(sae_dir, fold=fold)
    hook_name = sae.cfg.metadata.hook_name
    if "hook_mlp_in" in hook_name:
        model.set_use_hook_mlp_in(True)
    np_cfg = NeuronpediaRunnerConfig(sae_set="reference", sae_path=str(sae_dir), outputs_dir=str(sae_dir),
                                     huggingface_dataset_path=dataset, n_prompts_total=int(tokens.shape[0]),
                                     n_tokens_in_prompt=int(tokens.shape[1]), n_features_at_a_time=per_batch,
                                     sae_dtype="float32", model_dtype="float32")
    np_cfg.model_id = sae.cfg.metadata.model_name
    np_cfg.layer = sae.cfg.metadata.hook_layer
    vocab_dict = NeuronpediaRunner.get_vocab_dict(types.SimpleNamespace(model=model))  # type: ignore[arg-type]
    batches = feature_batches(sae.cfg.d_sae, per_batch)
    out = []
    with torch.no_grad():
        for features in batches:
            layout = SaeVisLayoutConfig(columns=[Column(
                SequencesConfig(stack_mode="stack-all", buffer=None, compute_buffer=True,
                                n_quantiles=np_cfg.n_quantiles, top_acts_group_size=np_cfg.top_acts_group_size,
                                quantile_group_size=np_cfg.quantile_group_size),
                ActsHistogramConfig(), LogitsHistogramConfig(), LogitsTableConfig(), FeatureTablesConfig(n_rows=3))])
            vis_cfg = SaeVisConfig(
                hook_point=hook_name, features=features, minibatch_size_features=per_batch,
                minibatch_size_tokens=N_PROMPTS_IN_FORWARD_PASS,
                quantile_feature_batch_size=QUANTILE_FEATURE_BATCH_SIZE, verbose=False, device="cpu",
                feature_centric_layout=layout, perform_ablation_experiments=False, dtype=np_cfg.sae_dtype,
                cache_dir=None, ignore_tokens=ignore_tokens(model), ignore_positions=[],
                ignore_high_activation_norm_multiple=None, use_dfa=False)
            data = SaeVisRunner(vis_cfg).run(encoder=sae, model=model, tokens=tokens)
            out.append(json.loads(NeuronpediaConverter.convert_to_np_json(model, data, np_cfg, vocab_dict)))
    return Reference(batches=out, feature_batches=batches, model=model)


def reference_activations(model: Any, sae_dir: Path, tokens: torch.Tensor, *, fold: bool = True,
                          masked: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Folded feature activations `[n_prompts, ctx, d_sae]` from TransformerLens's hook activations and SAELens's
    encode (zero at pad/bos/eos positions when `masked`: SAEDashboard's rule for everything but the correlations),
    and the hook's activations `[n_prompts, ctx, d_in]` they were encoded from (`hook_z` flattened over heads)."""
    sae = load_lens_sae(sae_dir, fold=fold)
    hook_name = sae.cfg.metadata.hook_name
    if sae.hook_z_reshaping_mode:
        sae.turn_off_forward_pass_hook_z_reshaping()
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens.long(), names_filter=hook_name)
        acts = cache[hook_name]
        if "hook_z" in hook_name:
            acts = acts.flatten(-2, -1)
        feats = sae.encode(acts).float()
    if masked:
        keep = ~torch.isin(tokens.long(), torch.tensor(sorted(ignore_tokens(model)), dtype=torch.long))
        feats = feats * keep[..., None]
    return feats, acts.float()


def band_edges(max_value: float, n_quantiles: int = 5) -> list[tuple[float, float]]:
    """SequenceDataGenerator's quantile bands: consecutive pairs of `torch.linspace(0, max, n + 1)` (float32),
    highest band first (the order of the groups in the batch file)."""
    edges = torch.linspace(0, max_value, n_quantiles + 1).tolist()
    return [(edges[i], edges[i + 1]) for i in range(n_quantiles - 1, -1, -1)]
