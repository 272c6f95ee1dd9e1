"""Tiny fake-Hub repos laid out exactly like the real repos behind SAELens's pretrained-SAE registry.

One `RegistryCase` per loader family (`conversion_func`) and per variant SAELens treats differently
(dictionary_learning classes, SAELens config versions, config_overrides, norm_scaling_factor, hook kinds).
Each case names a real registry release and SAE id; its builder writes the files that SAELens's loader for
that family downloads (same repo id, paths, file names, tensor names, orientations, config keys and value
types as `sae_lens/loading/pretrained_sae_loaders.py` reads them) with small seeded random tensors, into the
fake hub's layout `root/{owner}/{name}/main/...`. Dimensions fit a tiny random model of the case's
architecture (`mistudio.testing.tiny_models.build_tiny_model(model_family, n_layers=..., d_model=D_MODEL)`).

Some loaders take `d_in`/`d_sae` from the model or repo name rather than the files (Gemma Scope 1, Qwen Scope,
Goodfire, DeepSeek R1, Gemma Scope transcoders); `RegistryCase.name_dims` lists those keys, which the oracle
passes to SAELens's loader as config overrides so it builds the tiny SAE the files hold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

from fakes.hub_repos import write_npz

D_MODEL = 64  # every tiny model's hidden size; n_heads * d_head == D_MODEL in every tiny family
D_SAE = 128
TOPK_K = 8
REVISION = "main"


@dataclass(frozen=True)
class RegistryCase:
    """One SAE of the registry, the tiny model it fits and how its fake repo is written."""

    family: str  # conversion_func, "saelens" for releases without one
    variant: str
    release: str
    sae_id: str
    model_family: str  # tiny_models family the SAE fits
    n_layers: int
    build: Callable[[Path, RegistryCase], None]
    d_in: int = D_MODEL
    d_sae: int = D_SAE
    d_out: int | None = None  # transcoders
    name_dims: tuple[str, ...] = ()  # cfg keys SAELens's loader takes from names, not files
    # another variant of the family whose extraction runs the same model family at the same hooks (this
    # variant's extraction would repeat it); None: this variant runs its own
    extraction_as: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def case_id(self) -> str:
        return f"{self.family}-{self.variant}"

    @property
    def repo_id(self) -> str:
        return str(registry_entry(self.release).repo_id)

    @property
    def path(self) -> str:
        """The SAE's `path` in the registry (a folder, a file or a file stem, as the loader reads it)."""
        return str(registry_entry(self.release).saes_map[self.sae_id])

    @property
    def sae_lens_overrides(self) -> dict[str, int]:
        dims = {"d_in": self.d_in, "d_sae": self.d_sae, "d_out": self.d_out or self.d_in}
        return {key: dims[key] for key in self.name_dims}


def registry_entry(release: str) -> Any:
    """The installed SAELens registry's entry for `release` (its `PretrainedSAELookup`: repo_id, saes_map,
    norm_scaling_factor, config_overrides)."""
    from sae_lens.loading.pretrained_saes_directory import (  # type: ignore[import-untyped, unused-ignore]
        get_pretrained_saes_directory,
    )

    return get_pretrained_saes_directory()[release]


# ---- tensors ------------------------------------------------------------------------------------------------
def _gen(case: RegistryCase) -> torch.Generator:
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(case.case_id)) % (2**31)
    return torch.Generator().manual_seed(seed)


def _normal(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) * scale


def _enc(gen: torch.Generator, d_in: int, d_sae: int) -> torch.Tensor:
    """An encoder [d_in, d_sae] whose pre-activations on unit-variance inputs are about unit variance."""
    return _normal(gen, d_in, d_sae, scale=1 / math.sqrt(d_in))


def _dec(gen: torch.Generator, d_sae: int, d_out: int) -> torch.Tensor:
    return _normal(gen, d_sae, d_out, scale=1 / math.sqrt(d_sae))


def _bias(gen: torch.Generator, n: int) -> torch.Tensor:
    return _normal(gen, n, scale=0.1)


def _threshold(gen: torch.Generator, n: int) -> torch.Tensor:
    return torch.rand(n, generator=gen) * 0.4


def _base(root: Path, case: RegistryCase) -> Path:
    folder = Path(root) / case.repo_id / REVISION
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))


def _yaml(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(payload, sort_keys=False))


def _safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


def _torch_save(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in tensors.items()}, path)


# ---- Gemma Scope 2 (gemma_3) --------------------------------------------------------------------------------
def _gemma_3_hooks(kind: str, layer: int) -> tuple[str, str | None]:
    if kind.startswith("transcoder"):
        return (f"model.layers.{layer}.pre_feedforward_layernorm.output",
                f"model.layers.{layer}.post_feedforward_layernorm.output")
    inputs = {
        "resid_post": f"model.layers.{layer}.output",
        "attn_out": f"model.layers.{layer}.self_attn.o_proj.input",
        "mlp_out": f"model.layers.{layer}.post_feedforward_layernorm.output",
    }
    return inputs[kind.removesuffix("_all")], None


def build_gemma_3(root: Path, case: RegistryCase) -> None:
    """`{kind}/layer_{L}_width_{W}_l0_{size}[_affine]/params.safetensors` (lower-case `w_enc [d_in, d_sae]`,
    `w_dec [d_sae, d_out]`, `b_enc`, `b_dec`, `threshold`; affine transcoders add `affine_skip_connection
    [d_in, d_out]`) and, unless the case says otherwise, a `config.json` naming the HF hook points."""
    gen, folder = _gen(case), _base(root, case) / case.path
    d_out = case.d_out or case.d_in
    tensors = {
        "w_enc": _enc(gen, case.d_in, case.d_sae), "w_dec": _dec(gen, case.d_sae, d_out),
        "b_enc": _bias(gen, case.d_sae), "b_dec": _bias(gen, d_out), "threshold": _threshold(gen, case.d_sae),
    }
    kind = case.path.split("/")[0]
    affine = case.path.endswith("_affine")
    if affine:
        tensors["affine_skip_connection"] = _normal(gen, case.d_in, d_out, scale=0.1)
    _safetensors(folder / "params.safetensors", tensors)
    if not case.notes.get("config_json", True):
        return
    layer = int(case.path.split("layer_")[1].split("_")[0])
    hook_in, hook_out = _gemma_3_hooks(kind, layer)
    size = case.repo_id.split("gemma-scope-2-")[1]  # 270m-pt
    cfg: dict[str, Any] = {"architecture": "jump_relu", "model_name": f"gemma-v3-{size}", "hf_hook_point_in": hook_in}
    if hook_out is not None:
        cfg["hf_hook_point_out"] = hook_out
        cfg["affine_connection"] = affine
    _json(folder / "config.json", cfg)


# ---- Gemma Scope 1 (gemma_2) and its transcoders (gemma_2_transcoder) ------------------------------------------
def build_gemma_scope_npz(root: Path, case: RegistryCase) -> None:
    """`layer_{L}/width_{W}/average_l0_{K}/params.npz` with `W_enc [d_in, d_sae]`, `W_dec [d_sae, d_out]`,
    `b_enc`, `b_dec`, `threshold` (float32), as Gemma Scope 1 SAEs and transcoders are stored."""
    gen, base = _gen(case), _base(root, case)
    d_out = case.d_out or case.d_in
    arrays = {
        "W_dec": _dec(gen, case.d_sae, d_out), "W_enc": _enc(gen, case.d_in, case.d_sae),
        "b_dec": _bias(gen, d_out), "b_enc": _bias(gen, case.d_sae), "threshold": _threshold(gen, case.d_sae),
    }
    write_npz(base / case.path / "params.npz", {k: v.numpy().astype(np.float32) for k, v in arrays.items()})


# ---- dictionary_learning (dictionary_learning_1) -------------------------------------------------------------
_DICT_TRAINERS = {"AutoEncoder": "StandardTrainer", "GatedAutoEncoder": "GatedSAETrainer",
                  "AutoEncoderTopK": "TopKTrainer", "BatchTopKSAE": "BatchTopKTrainer",
                  "MatryoshkaBatchTopKSAE": "MatryoshkaBatchTopKTrainer"}


def _dictionary_state(gen: torch.Generator, dict_class: str, d_in: int, d_sae: int) -> dict[str, torch.Tensor]:
    """The `ae.pt` state dict of a dictionary_learning class (nn.Linear weights are [out, in])."""
    enc, dec = _enc(gen, d_in, d_sae), _dec(gen, d_sae, d_in)
    if dict_class == "AutoEncoder":
        return {"bias": _bias(gen, d_in), "encoder.weight": enc.T, "encoder.bias": _bias(gen, d_sae),
                "decoder.weight": dec.T}
    if dict_class == "GatedAutoEncoder":
        return {"decoder_bias": _bias(gen, d_in), "encoder.weight": enc.T, "r_mag": _bias(gen, d_sae),
                "gate_bias": _bias(gen, d_sae), "mag_bias": _bias(gen, d_sae), "decoder.weight": dec.T}
    if dict_class in ("AutoEncoderTopK", "BatchTopKSAE"):
        return {"k": torch.tensor(TOPK_K, dtype=torch.int), "threshold": torch.tensor(0.2),
                "decoder.weight": dec.T, "encoder.weight": enc.T, "encoder.bias": _bias(gen, d_sae),
                "b_dec": _bias(gen, d_in)}
    if dict_class == "MatryoshkaBatchTopKSAE":
        return {"k": torch.tensor(TOPK_K, dtype=torch.int), "threshold": torch.tensor(0.2),
                "group_sizes": torch.tensor([d_sae // 4, d_sae // 4, d_sae // 2]), "W_enc": enc,
                "b_enc": _bias(gen, d_sae), "W_dec": dec, "b_dec": _bias(gen, d_in)}
    raise ValueError(f"no fake for dictionary_learning class {dict_class}")


def build_dictionary_learning(root: Path, case: RegistryCase) -> None:
    """`{run}/resid_post_layer_{L}/trainer_{i}/ae.pt` + `config.json` (`trainer`: dict_class, activation_dim,
    dict_size, layer, lm_name, k; `buffer`: ctx_len)."""
    gen, folder = _gen(case), _base(root, case) / case.path
    dict_class = case.notes["dict_class"]
    layer = int(case.path.split("resid_post_layer_")[1].split("/")[0])
    trainer: dict[str, Any] = {
        "trainer_class": _DICT_TRAINERS[dict_class], "dict_class": dict_class, "lr": 0.0003, "steps": 244140,
        "seed": 0, "activation_dim": case.d_in, "dict_size": case.d_sae, "device": "cuda:0", "layer": layer,
        "lm_name": case.notes["lm_name"], "wandb_name": f"{dict_class}Trainer-{layer}",
        "submodule_name": f"resid_post_layer_{layer}",
    }
    if dict_class in ("AutoEncoderTopK", "BatchTopKSAE", "MatryoshkaBatchTopKSAE"):
        trainer.update({"k": TOPK_K, "auxk_alpha": 0.03125, "threshold_beta": 0.999})
    if dict_class == "MatryoshkaBatchTopKSAE":
        trainer.update({"group_fractions": [0.25, 0.25, 0.5], "group_sizes": [case.d_sae // 4, case.d_sae // 4,
                                                                              case.d_sae // 2]})
    if dict_class in ("AutoEncoder", "GatedAutoEncoder"):
        trainer.update({"l1_penalty": 0.04, "warmup_steps": 1000, "sparsity_warmup_steps": 5000})
    _json(folder / "config.json", {
        "trainer": trainer,
        "buffer": {"d_submodule": case.d_in, "io": "out", "n_ctxs": 2000, "ctx_len": 128,
                   "refresh_batch_size": 24, "out_batch_size": 4096, "device": "cuda:0"},
    })
    _torch_save(folder / "ae.pt", _dictionary_state(gen, dict_class, case.d_in, case.d_sae))


# ---- Qwen Scope (qwen_scope) ----------------------------------------------------------------------------------
def build_qwen_scope(root: Path, case: RegistryCase) -> None:
    """`layer{N}.sae.pt` at the repo root: a dict with `W_enc [d_sae, d_in]`, `W_dec [d_in, d_sae]` (both
    transposed relative to SAELens), `b_enc`, `b_dec`."""
    gen = _gen(case)
    enc, dec = _enc(gen, case.d_in, case.d_sae), _dec(gen, case.d_sae, case.d_in)
    _torch_save(_base(root, case) / case.path, {"W_enc": enc.T, "W_dec": dec.T, "b_enc": _bias(gen, case.d_sae),
                                                "b_dec": _bias(gen, case.d_in)})


# ---- SAELens format (no conversion_func) ---------------------------------------------------------------------
def build_saelens(root: Path, case: RegistryCase) -> None:
    """`{folder}/cfg.json` + `sae_weights.safetensors` (`W_enc [d_in, d_sae]`, `b_enc`, `W_dec [d_sae, d_in]`,
    `b_dec`, jumprelu `threshold`) + `sparsity.safetensors`; `cfg.json` as the SAELens version that wrote it
    (flat pre-6.0 keys such as `hook_point`/`activation_fn_str`, or 6.x with `metadata`)."""
    gen, folder = _gen(case), _base(root, case) / case.path
    hook = case.notes.get("hook", case.sae_id)
    layer = int(hook.split(".")[1])
    architecture = case.notes.get("architecture", "standard")
    tensors = {"W_enc": _enc(gen, case.d_in, case.d_sae), "b_enc": _bias(gen, case.d_sae),
               "W_dec": _dec(gen, case.d_sae, case.d_in), "b_dec": _bias(gen, case.d_in)}
    if architecture == "jumprelu":
        tensors["threshold"] = _threshold(gen, case.d_sae)
    model_name = case.notes["model_name"]
    if case.notes.get("cfg") == "v6":
        cfg: dict[str, Any] = {
            "d_in": case.d_in, "d_sae": case.d_sae, "dtype": "float32", "device": "cuda",
            "apply_b_dec_to_input": True, "normalize_activations": case.notes.get("normalize", "none"),
            "reshape_activations": "none",
            "metadata": {"sae_lens_version": "6.5.1", "sae_lens_training_version": "6.5.1",
                         "model_name": model_name, "hook_name": hook, "hook_head_index": None,
                         "prepend_bos": True, "dataset_path": "monology/pile-uncopyrighted", "context_size": 1024,
                         "model_class_name": "HookedTransformer", "model_from_pretrained_kwargs": {},
                         "exclude_special_tokens": True, "neuronpedia_id": None, "sequence_separator_token": "bos",
                         "disable_concat_sequences": False, "seqpos_slice": [None]},
            "architecture": architecture,
        }
    else:
        cfg = {
            "model_name": model_name, "model_class_name": "HookedTransformer", "hook_point": hook,
            "hook_point_eval": "blocks.{layer}.attn.pattern", "hook_point_layer": layer,
            "hook_point_head_index": None, "dataset_path": "Skylion007/openwebtext", "is_dataset_tokenized": False,
            "context_size": 128, "use_cached_activations": False, "cached_activations_path": None,
            "d_in": case.d_in, "d_sae": case.d_sae, "b_dec_init_method": "geometric_median",
            "expansion_factor": case.d_sae // case.d_in, "activation_fn_str": case.notes.get("activation", "relu"),
            "apply_b_dec_to_input": True, "lr": 0.0004, "l1_coefficient": 8e-05, "lr_scheduler_name": None,
            "train_batch_size": 4096, "n_batches_in_buffer": 128, "store_batch_size": 32, "seed": 42,
            "dtype": "torch.float32", "device": "cuda", "prepend_bos": True, "sae_lens_version": "3.5.0",
            "sae_lens_training_version": "3.5.0",
        }
        if "k" in case.notes:
            cfg["activation_fn_kwargs"] = {"k": case.notes["k"]}
        if "normalize" in case.notes:
            cfg["normalize_activations"] = case.notes["normalize"]
        if "sae_lens_version" in case.notes:
            if case.notes["sae_lens_version"] is None:
                del cfg["sae_lens_version"], cfg["sae_lens_training_version"]
            else:
                cfg["sae_lens_version"] = cfg["sae_lens_training_version"] = case.notes["sae_lens_version"]
    _json(folder / "cfg.json", cfg)
    _safetensors(folder / "sae_weights.safetensors", tensors)
    _safetensors(folder / "sparsity.safetensors", {"sparsity": -torch.rand(case.d_sae, generator=gen) * 4})


# ---- circuit-tracer transcoders (mwhanna_transcoder, mntss_clt_layer_transcoder) ---------------------------------
def build_mwhanna(root: Path, case: RegistryCase) -> None:
    """`layer_{L}.safetensors` (`W_enc [d_sae, d_in]`, `b_enc`, `W_dec [d_sae, d_out]`, `b_dec [d_out]`),
    `wandb-config.yaml` (wandb `{value: ...}` entries) and, except for the 14B repos, `config.yaml`."""
    gen, base = _gen(case), _base(root, case)
    d_out = case.d_out or case.d_in
    _safetensors(base / case.path, {"W_enc": _enc(gen, case.d_in, case.d_sae).T, "b_enc": _bias(gen, case.d_sae),
                                    "W_dec": _dec(gen, case.d_sae, d_out), "b_dec": _bias(gen, d_out)})
    _yaml(base / "wandb-config.yaml", {
        "_wandb": {"value": {"cli_version": "0.19.1", "python_version": "3.11.10"}},
        "d_model": {"value": case.d_in}, "d_feature": {"value": case.d_sae}, "batch_size": {"value": 1024},
        "lr": {"value": 0.0002}, "n_layers": {"value": case.n_layers}, "sparsity_coefficient": {"value": 10},
    })
    if case.notes.get("config_yaml", True):
        size = case.repo_id.split("qwen3-")[1].split("-")[0]  # 0.6b
        _yaml(base / "config.yaml", {
            "model_name": f"Qwen/Qwen3-{size.upper()}", "model_kind": "transcoder_set",
            "feature_input_hook": "mlp.hook_in", "feature_output_hook": "mlp.hook_out",
            "scan": f"{case.repo_id.split('/')[1]}",
            "transcoders": [f"hf://{case.repo_id}/layer_{i}.safetensors" for i in range(case.n_layers)],
        })


def build_mntss_clt(root: Path, case: RegistryCase) -> None:
    """A cross-layer transcoder: `config.yaml`, and per source layer `W_enc_{L}.safetensors` (`W_enc_{L}
    [d_sae, d_in]`, `b_enc_{L}`, `b_dec_{L}`) and `W_dec_{L}.safetensors` (`W_dec_{L} [d_sae, n_layers - L,
    d_out]`)."""
    gen, base = _gen(case), _base(root, case)
    d_out = case.d_out or case.d_in
    layer = int(case.path)
    _safetensors(base / f"W_enc_{layer}.safetensors", {
        f"W_enc_{layer}": _enc(gen, case.d_in, case.d_sae).T, f"b_enc_{layer}": _bias(gen, case.d_sae),
        f"b_dec_{layer}": _bias(gen, d_out)})
    n_targets = case.n_layers - layer
    _safetensors(base / f"W_dec_{layer}.safetensors", {
        f"W_dec_{layer}": _normal(gen, case.d_sae, n_targets, d_out, scale=1 / math.sqrt(case.d_sae * n_targets))})
    _yaml(base / "config.yaml", {"model_name": "google/gemma-2-2b", "model_kind": "cross_layer_transcoder",
                                 "feature_input_hook": "hook_resid_mid", "feature_output_hook": "hook_mlp_out",
                                 "scan": "gemma-2-2b"})


# ---- Llama Scope (llama_scope, llama_scope_r1_distill) ----------------------------------------------------------
def _llama_scope_hook(folder: str) -> str:
    layer, kind = folder.split("-L")[-1].split("-")[0][:-1], folder.split("-L")[-1].split("-")[0][-1]
    return f"blocks.{layer}." + {"R": "hook_resid_post", "A": "hook_attn_out", "M": "hook_mlp_out"}[kind]


def _input_norm(case: RegistryCase) -> float:
    """The dataset-average input norm for which √d_in / norm equals the registry's norm_scaling_factor."""
    nsf = registry_entry(case.release).norm_scaling_factor[case.sae_id]
    return math.sqrt(case.d_in) / float(nsf)


def build_llama_scope(root: Path, case: RegistryCase) -> None:
    """`{folder}/hyperparams.json` (d_model, d_sae, hook_point_in/out, jump_relu_threshold,
    dataset_average_activation_norm), `{folder}/lm_config.json` and `{folder}/checkpoints/final.safetensors`
    (`encoder.weight [d_sae, d_in]`, `encoder.bias`, `decoder.weight [d_in, d_sae]`, `decoder.bias`)."""
    gen, folder = _gen(case), _base(root, case) / case.path
    hook = _llama_scope_hook(case.path)
    norm = _input_norm(case)
    _json(folder / "hyperparams.json", {
        "d_model": case.d_in, "expansion_factor": case.d_sae // case.d_in, "d_sae": case.d_sae,
        "hook_point_in": hook, "hook_point_out": hook, "use_decoder_bias": True, "apply_decoder_bias_to_pre_encoder":
        False, "act_fn": "jumprelu", "jump_relu_threshold": 0.05, "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": norm, "out": norm}, "decoder_exactly_fixed_norm": False,
        "sparsity_include_decoder_norm": True, "use_glu_encoder": False, "top_k": 50, "l1_coefficient": 2e-05,
    })
    _json(folder / "lm_config.json", {"model_name": "meta-llama/Llama-3.1-8B", "d_model": case.d_in,
                                      "prepend_bos": True, "context_size": 1024})
    enc, dec = _enc(gen, case.d_in, case.d_sae), _dec(gen, case.d_sae, case.d_in)
    _safetensors(folder / "checkpoints" / "final.safetensors", {
        "encoder.weight": enc.T, "encoder.bias": _bias(gen, case.d_sae), "decoder.weight": dec.T,
        "decoder.bias": _bias(gen, case.d_in)})


def build_llama_scope_r1(root: Path, case: RegistryCase) -> None:
    """`{run}/L{L}R/config.json` (d_model, expansion_factor, hook_point_in/out, ...) and
    `sae_weights.safetensors` (`encoder.weight`, `encoder.bias`, `decoder.weight`, `decoder.bias`,
    `log_jumprelu_threshold`)."""
    gen, folder = _gen(case), _base(root, case) / case.path
    layer = int(case.path.split("/L")[1].rstrip("R"))
    hook = f"blocks.{layer}.hook_resid_post"
    norm = _input_norm(case)
    _json(folder / "config.json", {
        "sae_type": "sae", "d_model": case.d_in, "expansion_factor": case.d_sae // case.d_in,
        "hook_point_in": hook, "hook_point_out": hook, "act_fn": "jumprelu", "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {hook: norm}, "use_decoder_bias": True, "top_k": 50,
        "sparsity_include_decoder_norm": True, "dtype": "torch.float32",
    })
    enc, dec = _enc(gen, case.d_in, case.d_sae), _dec(gen, case.d_sae, case.d_in)
    _safetensors(folder / "sae_weights.safetensors", {
        "encoder.weight": enc.T, "encoder.bias": _bias(gen, case.d_sae), "decoder.weight": dec.T,
        "decoder.bias": _bias(gen, case.d_in), "log_jumprelu_threshold": torch.log(_threshold(gen, case.d_sae) + 0.05)})


# ---- one-file SAEs (connor_rob_hook_z, goodfire, deepseek_r1) ----------------------------------------------------
def build_connor_hook_z(root: Path, case: RegistryCase) -> None:
    """`{run}.pt` (`W_enc [d_in, d_sae]`, `W_dec [d_sae, d_in]`, `b_enc`, `b_dec`; d_in = n_heads·d_head)
    next to `{run}_cfg.json` (act_name, act_size, dict_size, ...)."""
    gen, base = _gen(case), _base(root, case)
    layer = int(case.sae_id.split(".")[1])
    _torch_save(base / case.path, {"W_enc": _enc(gen, case.d_in, case.d_sae), "W_dec": _dec(gen, case.d_sae, case.d_in),
                                   "b_enc": _bias(gen, case.d_sae), "b_dec": _bias(gen, case.d_in)})
    _json(base / (case.path.split(".pt")[0] + "_cfg.json"), {
        "seed": 49, "batch_size": 4096, "buffer_mult": 384, "lr": 0.0012, "num_tokens": 2000000000,
        "l1_coeff": 1.8, "beta1": 0.9, "beta2": 0.99, "dict_mult": case.d_sae // case.d_in, "seq_len": 128,
        "enc_dtype": "fp32", "model_name": "gpt2-small", "site": "z", "layer": layer, "device": "cuda",
        "reinit": "reinit", "head": "cat", "concat_heads": True, "resample_scheme": "anthropic",
        "anthropic_neuron_resample_scale": 0.2, "dead_direction_cutoff": 1e-06, "re_init_every": 25000,
        "anthropic_resample_last": 12500, "model_batch_size": 512, "buffer_size": 1572864,
        "buffer_batches": 12288, "act_name": f"blocks.{layer}.attn.hook_z", "act_size": case.d_in,
        "dict_size": case.d_sae, "name": f"gpt2-small_{layer}_{case.d_sae}_z",
    })


def build_goodfire(root: Path, case: RegistryCase) -> None:
    """One `.pth`/`.pt` state dict: `encoder_linear.weight [d_sae, d_in]`, `encoder_linear.bias`,
    `decoder_linear.weight [d_in, d_sae]`, `decoder_linear.bias`."""
    gen = _gen(case)
    enc, dec = _enc(gen, case.d_in, case.d_sae), _dec(gen, case.d_sae, case.d_in)
    _torch_save(_base(root, case) / case.path, {
        "encoder_linear.weight": enc.T, "encoder_linear.bias": _bias(gen, case.d_sae),
        "decoder_linear.weight": dec.T, "decoder_linear.bias": _bias(gen, case.d_in)})


def build_deepseek_r1(root: Path, case: RegistryCase) -> None:
    """One `.pt` state dict in bfloat16: `encoder.weight [d_sae, d_in]`, `encoder.bias`,
    `decoder.weight [d_in, d_sae]`, `decoder.bias`."""
    gen = _gen(case)
    enc, dec = _enc(gen, case.d_in, case.d_sae), _dec(gen, case.d_sae, case.d_in)
    _torch_save(_base(root, case) / case.path, {k: v.to(torch.bfloat16) for k, v in {
        "encoder.weight": enc.T, "encoder.bias": _bias(gen, case.d_sae), "decoder.weight": dec.T,
        "decoder.bias": _bias(gen, case.d_in)}.items()})


# ---- temporal SAEs (temporal) ----------------------------------------------------------------------------------
def build_temporal(root: Path, case: RegistryCase) -> None:
    """`{model}/layer_{L}/temporal/conf.yaml` (llm.dimin, sae.*, data.dtype) and `latest_ckpt.safetensors`
    (`D [d_sae, d_in]`, `b [d_in]`, tied encoder, `attn_layers.{i}.{q_target,k_ctx,v_ctx,c_proj}.{weight,bias}`
    over the d_sae-wide codes)."""
    gen, folder = _gen(case), _base(root, case) / case.path
    n_heads, bottleneck = 4, 2
    _yaml(folder / "conf.yaml", {
        "llm": {"name": "google/gemma-2-2b", "dimin": case.d_in, "layer": 12},
        "sae": {"exp_factor": case.d_sae // case.d_in, "n_heads": n_heads, "n_attn_layers": 1,
                "bottleneck_factor": bottleneck, "sae_diff_type": "topk", "kval_topk": TOPK_K,
                "tied_weights": True, "scaling_factor": 0.00666666667},
        "data": {"dtype": "float32", "seq_len": 500},
    })
    width, inner = case.d_sae, case.d_sae // bottleneck
    tensors = {"D": _dec(gen, case.d_sae, case.d_in), "b": _bias(gen, case.d_in)}
    for name, (rows, cols) in {"q_target": (inner, width), "k_ctx": (inner, width), "v_ctx": (width, width),
                               "c_proj": (width, width)}.items():
        tensors[f"attn_layers.0.{name}.weight"] = _normal(gen, rows, cols, scale=1 / math.sqrt(cols))
        tensors[f"attn_layers.0.{name}.bias"] = _bias(gen, rows)
    _safetensors(folder / "latest_ckpt.safetensors", tensors)


# ---- the cases -----------------------------------------------------------------------------------------------
def _case(family: str, variant: str, release: str, sae_id: str, model_family: str, n_layers: int,
          build: Callable[[Path, RegistryCase], None], **kwargs: Any) -> RegistryCase:
    return RegistryCase(family, variant, release, sae_id, model_family, n_layers, build, **kwargs)


_G2_NAME_DIMS = ("d_in", "d_sae")
_TC_NAME_DIMS = ("d_in", "d_out", "d_sae")

CASES: tuple[RegistryCase, ...] = (
    _case("gemma_3", "resid_post", "gemma-scope-2-270m-pt-res-all", "layer_0_width_16k_l0_big", "gemma3", 2,
          build_gemma_3),
    _case("gemma_3", "attn_out-hook_z", "gemma-scope-2-270m-pt-att-all", "layer_0_width_16k_l0_big", "gemma3", 2,
          build_gemma_3),
    _case("gemma_3", "mlp_out", "gemma-scope-2-270m-pt-mlp-all", "layer_0_width_16k_l0_big", "gemma3", 2,
          build_gemma_3),
    _case("gemma_3", "transcoder", "gemma-scope-2-270m-pt-transcoders-all", "layer_0_width_16k_l0_big", "gemma3",
          2, build_gemma_3, d_out=D_MODEL),
    _case("gemma_3", "transcoder-affine", "gemma-scope-2-270m-pt-transcoders-all", "layer_0_width_16k_l0_big_affine",
          "gemma3", 2, build_gemma_3, d_out=D_MODEL, extraction_as="transcoder"),
    _case("gemma_3", "no-config-json", "gemma-scope-2-1b-pt-res-all", "layer_0_width_16k_l0_big", "gemma3", 2,
          build_gemma_3, notes={"config_json": False}, extraction_as="resid_post"),
    _case("gemma_3", "multimodal-4b", "gemma-scope-2-4b-pt-res-all", "layer_0_width_16k_l0_big",
          "gemma3_multimodal", 2, build_gemma_3),
    _case("gemma_2", "res-canonical", "gemma-scope-2b-pt-res-canonical", "layer_0/width_16k/canonical", "gemma2",
          13, build_gemma_scope_npz, name_dims=_G2_NAME_DIMS),
    _case("gemma_2", "att-hook_z", "gemma-scope-2b-pt-att", "layer_0/width_16k/average_l0_104", "gemma2", 13,
          build_gemma_scope_npz, name_dims=_G2_NAME_DIMS),
    _case("gemma_2", "mlp", "gemma-scope-2b-pt-mlp", "layer_0/width_16k/average_l0_119", "gemma2", 13,
          build_gemma_scope_npz, name_dims=_G2_NAME_DIMS),
    _case("gemma_2", "embedding", "gemma-scope-2b-pt-res", "embedding/width_4k/average_l0_6", "gemma2", 13,
          build_gemma_scope_npz, name_dims=_G2_NAME_DIMS),
    _case("gemma_2_transcoder", "mlp", "gemma-scope-2b-pt-transcoders", "layer_0/width_16k/average_l0_76",
          "gemma2", 13, build_gemma_scope_npz, d_out=D_MODEL, name_dims=_TC_NAME_DIMS),
    _case("dictionary_learning_1", "AutoEncoder", "sae_bench_pythia70m_sweep_standard_ctx128_0712",
          "blocks.3.hook_resid_post__trainer_10", "pythia", 4, build_dictionary_learning,
          notes={"dict_class": "AutoEncoder", "lm_name": "EleutherAI/pythia-70m-deduped"}),
    _case("dictionary_learning_1", "GatedAutoEncoder", "sae_bench_pythia70m_sweep_gated_ctx128_0730",
          "blocks.3.hook_resid_post__trainer_0", "pythia", 4, build_dictionary_learning,
          notes={"dict_class": "GatedAutoEncoder", "lm_name": "EleutherAI/pythia-70m-deduped"},
          extraction_as="AutoEncoder"),
    _case("dictionary_learning_1", "AutoEncoderTopK", "sae_bench_pythia70m_sweep_topk_ctx128_0730",
          "blocks.3.hook_resid_post__trainer_0", "pythia", 4, build_dictionary_learning,
          notes={"dict_class": "AutoEncoderTopK", "lm_name": "EleutherAI/pythia-70m-deduped"},
          extraction_as="AutoEncoder"),
    _case("dictionary_learning_1", "MatryoshkaBatchTopKSAE", "saebench_gemma-2-2b_width-2pow12_date-0108",
          "blocks.12.hook_resid_post__trainer_0", "gemma2", 13, build_dictionary_learning,
          notes={"dict_class": "MatryoshkaBatchTopKSAE", "lm_name": "google/gemma-2-2b"}),
    _case("dictionary_learning_1", "BatchTopKSAE-llama", "llama-3.1-8b-instruct-andyrdt",
          "resid_post_layer_3_trainer_1", "llama3", 20, build_dictionary_learning,
          notes={"dict_class": "BatchTopKSAE", "lm_name": "meta-llama/Llama-3.1-8B-Instruct"}),
    _case("dictionary_learning_1", "BatchTopKSAE-qwen2.5", "qwen2.5-7b-instruct-andyrdt",
          "resid_post_layer_3_trainer_1", "qwen2", 4, build_dictionary_learning,
          notes={"dict_class": "BatchTopKSAE", "lm_name": "Qwen/Qwen2.5-7B-Instruct"}),
    _case("dictionary_learning_1", "BatchTopKSAE-gpt-oss", "gpt-oss-20b-andyrdt", "resid_post_layer_3_trainer_0",
          "gpt_oss", 4, build_dictionary_learning,
          notes={"dict_class": "BatchTopKSAE", "lm_name": "openai/gpt-oss-20b"}),
    _case("qwen_scope", "qwen3", "qwen-scope-3-1.7b-base-w32k-l50", "layer0", "qwen3", 2, build_qwen_scope,
          name_dims=_G2_NAME_DIMS),
    _case("qwen_scope", "qwen3-moe", "qwen-scope-3-30b-a3b-base-w32k-l50", "layer0", "qwen3_moe", 2,
          build_qwen_scope, name_dims=_G2_NAME_DIMS),
    _case("qwen_scope", "qwen3.5", "qwen-scope-3.5-2b-base-w32k-l50", "layer0", "qwen3_5", 2, build_qwen_scope,
          name_dims=_G2_NAME_DIMS),
    _case("qwen_scope", "qwen3.5-moe", "qwen-scope-3.5-35b-a3b-base-w32k-l50", "layer0", "qwen3_5_moe", 2,
          build_qwen_scope, name_dims=_G2_NAME_DIMS),
    _case("saelens", "v6-jumprelu", "gemma-2-2b-res-matryoshka-dc", "blocks.0.hook_resid_post", "gemma2", 13,
          build_saelens, notes={"cfg": "v6", "architecture": "jumprelu", "model_name": "gemma-2-2b"}),
    _case("saelens", "v6-gemma3", "gemma-3-1b-res-matryoshka-dc", "blocks.0.hook_resid_post", "gemma3", 2,
          build_saelens, notes={"cfg": "v6", "architecture": "jumprelu", "model_name": "google/gemma-3-1b-pt"}),
    _case("saelens", "sae-id-is-not-the-hook", "gpt2-small-res-jb-feature-splitting", "blocks.8.hook_resid_pre_768",
          "gpt2", 9, build_saelens, notes={"model_name": "gpt2-small", "hook": "blocks.8.hook_resid_pre"},
          extraction_as="pre6-center-writing-weights"),
    _case("saelens", "attn-out-v5", "gpt2-small-attn-out-v5-32k", "blocks.0.hook_attn_out", "gpt2", 2,
          build_saelens, notes={"model_name": "gpt2-small", "activation": "topk", "k": TOPK_K,
                                "normalize": "layer_norm"}),
    _case("saelens", "resid-mid-v5", "gpt2-small-resid-mid-v5-32k", "blocks.0.hook_resid_mid", "gpt2", 2,
          build_saelens, notes={"model_name": "gpt2-small", "activation": "topk", "k": TOPK_K,
                                "normalize": "layer_norm"}),
    _case("saelens", "pythia-attn-out", "pythia-70m-deduped-att-sm", "blocks.0.hook_attn_out", "pythia", 4,
          build_saelens, notes={"model_name": "pythia-70m-deduped"}),
    _case("saelens", "pre6-center-writing-weights", "gpt2-small-res-jb", "blocks.0.hook_resid_pre", "gpt2", 2,
          build_saelens, notes={"model_name": "gpt2-small", "sae_lens_version": None}),
    _case("saelens", "pre6-topk-layer-norm", "gpt2-small-resid-post-v5-32k", "blocks.0.hook_resid_post", "gpt2", 2,
          build_saelens, notes={"model_name": "gpt2-small", "activation": "topk", "k": TOPK_K,
                                "normalize": "layer_norm"}),
    _case("saelens", "norm-scaling-factor", "gpt2-small-mlp-tm", "blocks.0.hook_mlp_out", "gpt2", 2,
          build_saelens, notes={"model_name": "gpt2-small", "normalize": "expected_average_only_in"}),
    _case("saelens", "norm-scaling-bool", "gemma-2b-res-jb", "blocks.12.hook_resid_post", "gemma", 13,
          build_saelens, notes={"model_name": "gemma-2b", "normalize": True, "sae_lens_version": "2.1.3"}),
    _case("saelens", "constant-norm-rescale-override", "mistral-7b-res-wg", "blocks.8.hook_resid_pre", "mistral", 9,
          build_saelens, notes={"model_name": "mistral-7b", "normalize": "none"}),
    _case("saelens", "pythia", "pythia-70m-deduped-res-sm", "blocks.0.hook_resid_pre", "pythia", 4,
          build_saelens, notes={"model_name": "pythia-70m-deduped"}),
    _case("mwhanna_transcoder", "qwen3", "mwhanna-qwen3-0.6b-transcoders-lowl0", "layer_0", "qwen3", 2,
          build_mwhanna, d_out=D_MODEL),
    _case("mwhanna_transcoder", "no-config-yaml", "mwhanna-qwen3-14b-transcoders", "layer_0", "qwen3", 2,
          build_mwhanna, d_out=D_MODEL, notes={"config_yaml": False}, extraction_as="qwen3"),
    _case("mntss_clt_layer_transcoder", "gemma2", "mntss-gemma-2-2b-2.5m-clt-as-per-layer", "layer_0", "gemma2", 13,
          build_mntss_clt, d_out=D_MODEL),
    _case("llama_scope", "res", "llama_scope_lxr_8x", "l0r_8x", "llama3", 20, build_llama_scope),
    _case("llama_scope", "attn", "llama_scope_lxa_8x", "l0a_8x", "llama3", 20, build_llama_scope),
    _case("llama_scope", "mlp-32x", "llama_scope_lxm_32x", "l0m_32x", "llama3", 20, build_llama_scope, d_sae=256),
    _case("llama_scope_r1_distill", "res", "llama_scope_r1_distill", "l0r_800m_slimpajama", "llama3", 20,
          build_llama_scope_r1),
    _case("connor_rob_hook_z", "gpt2", "gpt2-small-hook-z-kk", "blocks.0.hook_z", "gpt2", 2, build_connor_hook_z),
    _case("temporal", "gemma2", "temporal-sae-gemma-2-2b", "blocks.12.hook_resid_post", "gemma2", 13,
          build_temporal),
    _case("goodfire", "llama-3.1-8b", "goodfire-llama-3.1-8b-instruct", "layer_19", "llama3", 20, build_goodfire,
          name_dims=_G2_NAME_DIMS),
    _case("deepseek_r1", "llama", "deepseek-r1-distill-llama-8b-qresearch", "blocks.19.hook_resid_post", "llama3",
          20, build_deepseek_r1, name_dims=_G2_NAME_DIMS),
)


def build_registry_repos(root: Path, cases: tuple[RegistryCase, ...] = CASES) -> list[str]:
    """Write every case's fake repo under `root`; return the repo ids."""
    for case in cases:
        case.build(Path(root), case)
    return sorted({case.repo_id for case in cases})
