"""Test helpers: random SAEs of every architecture, and writers for every on-disk SAE format.

Other test files reuse these:

* `make_sae(arch, ...)` – a random `SAE` whose activations are neither all zero nor all active.
* `write_in_format(sae, fmt, root)` – write it as `saelens`, `saelens_v5`, `mistudio`, `gemma_scope`, `sparsify`
  or `dictionary_learning` under `root`; returns the SAE folder.  `formats_for(sae)` lists the formats that can
  represent a given SAE exactly.
* `reference_encode(sae, x)` – a slow, loop-based encoder written from each source library's definition, used
  as an independent oracle.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from mistudio.saes.formats import write_native, write_saelens
from mistudio.saes.model import SAE, SAEConfig

ARCHITECTURES = ("standard", "jumprelu", "topk", "batchtopk", "gated")
FORMATS = ("saelens", "saelens_v5", "mistudio", "gemma_scope", "sparsify", "dictionary_learning")
DICT_CLASS = {
    "standard": "AutoEncoder",
    "topk": "AutoEncoderTopK",
    "gated": "GatedAutoEncoder",
    "jumprelu": "JumpReluAutoEncoder",
    "batchtopk": "BatchTopKSAE",
}


def make_sae(
    architecture: str,
    d_in: int = 16,
    d_sae: int = 45,
    *,
    seed: int = 0,
    k: int = 5,
    apply_b_dec_to_input: bool | None = None,
    normalize_activations: str = "none",
    rescale_acts_by_decoder_norm: bool = False,
    hook_name: str = "blocks.1.hook_resid_post",
    model_name: str = "tiny-gpt2",
) -> SAE:
    """A random SAE; jumprelu defaults to apply_b_dec_to_input=False (Gemma Scope style), batchtopk gets one
    global threshold (as BatchTopK training produces)."""
    if apply_b_dec_to_input is None:
        apply_b_dec_to_input = architecture != "jumprelu"
    cfg = SAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        architecture=architecture,
        k=k if architecture in ("topk", "batchtopk") else None,
        model_name=model_name,
        hook_name=hook_name,
        context_size=128,
        normalize_activations=normalize_activations,
        apply_b_dec_to_input=apply_b_dec_to_input,
        rescale_acts_by_decoder_norm=rescale_acts_by_decoder_norm,
        dataset_path="tiny/dataset",
    )
    sae = SAE(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if name.startswith("W") else 0.1))
        if architecture == "jumprelu":
            sae.threshold.copy_(torch.rand(d_sae, generator=gen) * 0.3)
        if architecture == "batchtopk":
            sae.threshold.fill_(0.15)
    return sae


def formats_for(sae: SAE) -> list[str]:
    """The on-disk formats that represent `sae` exactly."""
    cfg = sae.cfg
    out = ["saelens", "mistudio"]
    if cfg.architecture in ("standard", "topk") and cfg.normalize_activations == "none":
        out.append("saelens_v5")
    plain = cfg.normalize_activations == "none" and not cfg.rescale_acts_by_decoder_norm
    if cfg.architecture == "jumprelu" and not cfg.apply_b_dec_to_input and plain:
        out.append("gemma_scope")
    if cfg.architecture == "topk" and cfg.apply_b_dec_to_input and plain:
        out.append("sparsify")
    dl_b_dec = cfg.architecture != "jumprelu"
    uniform = cfg.architecture != "batchtopk" or bool((sae.threshold == sae.threshold[0]).all())
    if plain and cfg.apply_b_dec_to_input == dl_b_dec and uniform:
        out.append("dictionary_learning")
    return out


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy()


def write_saelens_v5(sae: SAE, folder: Path) -> Path:
    """A pre-6.0 flat SAELens folder (hook_point / hook_point_layer / activation_fn_str spellings)."""
    cfg = sae.cfg
    folder.mkdir(parents=True)
    flat = {
        "model_name": cfg.model_name,
        "hook_point": cfg.hook_name,
        "hook_point_layer": cfg.hook_layer,
        "hook_point_head_index": None,
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": "torch.float32",
        "device": "cpu",
        "context_size": cfg.context_size,
        "prepend_bos": True,
        "normalize_activations": False,
        "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
        "activation_fn_str": "topk" if cfg.architecture == "topk" else "relu",
        "activation_fn_kwargs": {"k": int(cfg.k)} if cfg.architecture == "topk" else {},
        "dataset_path": cfg.dataset_path,
        "sae_lens_training_version": "3.5.0",
        "l1_coefficient": 5.0,
    }
    (folder / "cfg.json").write_text(json.dumps(flat))
    tensors = {n: p.detach().contiguous() for n, p in sae.named_parameters()}
    tensors["scaling_factor"] = torch.ones(cfg.d_sae)
    save_file(tensors, str(folder / "sae_weights.safetensors"))
    return folder


def write_gemma_scope(sae: SAE, root: Path, layer: int = 3, l0: int = 42) -> Path:
    """`root/layer_{L}/width_{W}/average_l0_{K}/params.npz` (W is written as `{d_sae}k`)."""
    folder = root / f"layer_{layer}" / f"width_{sae.cfg.d_sae}k" / f"average_l0_{l0}"
    folder.mkdir(parents=True)
    np.savez(
        folder / "params.npz",
        W_enc=_np(sae.W_enc),
        W_dec=_np(sae.W_dec),
        b_enc=_np(sae.b_enc),
        b_dec=_np(sae.b_dec),
        threshold=_np(sae.threshold),
    )
    return folder


def write_sparsify(sae: SAE, root: Path, layer: int = 2) -> Path:
    """`root/layers.{L}/{cfg.json, sae.safetensors}` plus the run's `root/config.json`."""
    cfg = sae.cfg
    folder = root / f"layers.{layer}"
    folder.mkdir(parents=True)
    (root / "config.json").write_text(
        json.dumps({"model": cfg.model_name, "ctx_len": 64, "dataset": "tiny/ds"})
    )
    (folder / "cfg.json").write_text(
        json.dumps(
            {
                "expansion_factor": 32,
                "normalize_decoder": True,
                "num_latents": cfg.d_sae,
                "k": int(cfg.k),
                "multi_topk": False,
                "d_in": cfg.d_in,
            }
        )
    )
    save_file(
        {
            "encoder.weight": sae.W_enc.detach().T.contiguous(),
            "encoder.bias": sae.b_enc.detach().clone(),
            "W_dec": sae.W_dec.detach().contiguous(),
            "b_dec": sae.b_dec.detach().clone(),
        },
        str(folder / "sae.safetensors"),
    )
    return folder


def write_dictionary_learning(sae: SAE, folder: Path, layer: int = 4) -> Path:
    """`folder/{ae.pt, config.json}` with the state-dict names of the matching dictionary_learning class."""
    cfg = sae.cfg
    arch = cfg.architecture
    folder.mkdir(parents=True)
    d = {n: p.detach().clone() for n, p in sae.named_parameters()}
    if arch == "jumprelu":
        state = {k: d[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")}
    elif arch == "gated":
        state = {
            "decoder_bias": d["b_dec"],
            "r_mag": d["r_mag"],
            "gate_bias": d["b_gate"],
            "mag_bias": d["b_mag"],
            "encoder.weight": d["W_enc"].T.contiguous(),
            "decoder.weight": d["W_dec"].T.contiguous(),
        }
    else:
        state = {
            "encoder.weight": d["W_enc"].T.contiguous(),
            "encoder.bias": d["b_enc"],
            "decoder.weight": d["W_dec"].T.contiguous(),
        }
        state["bias" if arch == "standard" else "b_dec"] = d["b_dec"]
        if arch in ("topk", "batchtopk"):
            state["k"] = torch.tensor(int(cfg.k))
            state["threshold"] = d["threshold"][0].clone() if arch == "batchtopk" else torch.tensor(-1.0)
    torch.save(state, folder / "ae.pt")
    trainer = {
        "dict_class": DICT_CLASS[arch],
        "activation_dim": cfg.d_in,
        "dict_size": cfg.d_sae,
        "layer": layer,
        "lm_name": f"org/{cfg.model_name}",
        "k": cfg.k,
    }
    (folder / "config.json").write_text(json.dumps({"trainer": trainer, "buffer": {"ctx_len": 96}}))
    return folder


def write_in_format(sae: SAE, fmt: str, root: Path) -> Path:
    """Write `sae` in `fmt` under the (new) folder `root`; returns the SAE folder."""
    root = Path(root)
    if fmt == "saelens":
        return write_saelens(sae, root / "sae")
    if fmt == "saelens_v5":
        return write_saelens_v5(sae, root / "sae")
    if fmt == "mistudio":
        return write_native(sae, root / "sae", training_metadata={"steps": 10})
    if fmt == "gemma_scope":
        return write_gemma_scope(sae, root)
    if fmt == "sparsify":
        return write_sparsify(sae, root)
    if fmt == "dictionary_learning":
        return write_dictionary_learning(sae, root / "ae")
    raise ValueError(fmt)


def reference_encode(sae: SAE, x: torch.Tensor) -> torch.Tensor:
    """Row-by-row, feature-by-feature encoder from each library's own definition ([n, d_in] → [n, d_sae])."""
    cfg = sae.cfg
    W_enc, b_dec = sae.W_enc.double(), sae.b_dec.double()
    out = torch.zeros(x.shape[0], cfg.d_sae, dtype=torch.float64)
    for row in range(x.shape[0]):
        v = x[row].double() - (b_dec if cfg.apply_b_dec_to_input else 0)
        pre = [float(v @ W_enc[:, j]) for j in range(cfg.d_sae)]
        for j in range(cfg.d_sae):
            if cfg.architecture == "gated":
                gate = pre[j] + float(sae.b_gate[j]) > 0
                mag = pre[j] * float(sae.r_mag[j].double().exp()) + float(sae.b_mag[j])
                out[row, j] = max(mag, 0.0) if gate else 0.0
                continue
            h = pre[j] + float(sae.b_enc[j])
            if cfg.architecture in ("jumprelu", "batchtopk"):
                out[row, j] = h if h > float(sae.threshold[j]) and h > 0 else 0.0
            else:
                out[row, j] = max(h, 0.0)
        if cfg.architecture == "topk":
            pre_b = [pre[j] + float(sae.b_enc[j]) for j in range(cfg.d_sae)]
            keep = sorted(range(cfg.d_sae), key=lambda j: pre_b[j], reverse=True)[: int(cfg.k)]
            out[row] = 0.0
            for j in keep:
                out[row, j] = max(pre_b[j], 0.0)
    return out.float()


# ----- the SAELens registry's families, laid out as their repos lay them out (tiny tensors) -----------------------


def _rand(gen: torch.Generator, *shape: int, scale: float = 0.3) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) * scale


def _threshold(gen: torch.Generator, d_sae: int) -> torch.Tensor:
    return torch.rand(d_sae, generator=gen) * 0.2


def write_gemma_scope_2(root: Path, site: str = "resid_post", layer: int = 3, *, d_in: int = 32, d_sae: int = 64,
                        l0: str = "small", affine: bool = False, config: bool = True, seed: int = 0) -> str:
    """`{site}/layer_{L}_width_16k_l0_{l0}[_affine]/params.safetensors` (+ `config.json`) of a Gemma Scope 2
    repo under `root`; returns the SAE's folder (its registry path)."""
    gen = torch.Generator().manual_seed(seed)
    folder = f"{site}/layer_{layer}_width_16k_l0_{l0}" + ("_affine" if affine else "")
    out = root / folder
    out.mkdir(parents=True)
    tensors = {"w_enc": _rand(gen, d_in, d_sae), "w_dec": _rand(gen, d_sae, d_in), "b_enc": _rand(gen, d_sae, scale=0.1),
               "b_dec": _rand(gen, d_in, scale=0.1), "threshold": _threshold(gen, d_sae)}
    transcoder = site.startswith("transcoder")
    if affine:
        tensors["affine_skip_connection"] = _rand(gen, d_in, d_in, scale=0.1)
    save_file(tensors, str(out / "params.safetensors"))
    if config:
        hf_in = (f"model.layers.{layer}.pre_feedforward_layernorm.output" if transcoder
                 else f"model.layers.{layer}.output")
        raw = {"architecture": "jump_relu", "model_name": "gemma-v3-1b-pt", "hf_hook_point_in": hf_in,
               "width": d_sae, "l0": 20}
        if transcoder:
            raw["hf_hook_point_out"] = f"model.layers.{layer}.post_feedforward_layernorm.output"
            raw["affine_connection"] = affine
        (out / "config.json").write_text(json.dumps(raw))
    return folder


def write_gemma_2_transcoder(root: Path, layer: int = 3, *, d_in: int = 32, d_sae: int = 64, seed: int = 0) -> str:
    """`layer_{L}/width_16k/average_l0_76/params.npz` of `google/gemma-scope-2b-pt-transcoders`."""
    gen = torch.Generator().manual_seed(seed)
    folder = f"layer_{layer}/width_16k/average_l0_76"
    (root / folder).mkdir(parents=True)
    np.savez(root / folder / "params.npz", W_enc=_np(_rand(gen, d_in, d_sae)), W_dec=_np(_rand(gen, d_sae, d_in)),
             b_enc=_np(_rand(gen, d_sae, scale=0.1)), b_dec=_np(_rand(gen, d_in, scale=0.1)),
             threshold=_np(_threshold(gen, d_sae)))
    return folder


def write_qwen_scope(root: Path, layers: tuple[int, ...] = (0, 1), *, d_in: int = 16, d_sae: int = 1024,
                     seed: int = 0) -> list[str]:
    """`layer{N}.sae.pt` files at the root of a `Qwen/SAE-Res-{model}-W1K-L0_{k}` repo (transposed weights)."""
    gen = torch.Generator().manual_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        torch.save({"W_enc": _rand(gen, d_sae, d_in), "W_dec": _rand(gen, d_in, d_sae),
                    "b_enc": _rand(gen, d_sae, scale=0.1), "b_dec": _rand(gen, d_in, scale=0.1)},
                   root / f"layer{layer}.sae.pt")
    return [f"layer{layer}.sae.pt" for layer in layers]


def write_llama_scope(root: Path, layer: int = 3, *, d_in: int = 16, d_sae: int = 64, norm_in: float = 5.0,
                      seed: int = 0) -> str:
    """`Llama3_1-8B-Base-L{L}R-8x/{hyperparams.json, lm_config.json, checkpoints/final.safetensors}`."""
    gen = torch.Generator().manual_seed(seed)
    folder = f"Llama3_1-8B-Base-L{layer}R-8x"
    (root / folder / "checkpoints").mkdir(parents=True)
    hyper = {"d_model": d_in, "d_sae": d_sae, "hook_point_in": f"blocks.{layer}.hook_resid_post",
             "hook_point_out": f"blocks.{layer}.hook_resid_post", "jump_relu_threshold": 0.6,
             "dataset_average_activation_norm": {"in": norm_in, "out": norm_in}}
    (root / folder / "hyperparams.json").write_text(json.dumps(hyper))
    (root / folder / "lm_config.json").write_text(json.dumps({"model_name": "meta-llama/Llama-3.1-8B"}))
    save_file({"encoder.weight": _rand(gen, d_sae, d_in), "encoder.bias": _rand(gen, d_sae, scale=0.1),
               "decoder.weight": _rand(gen, d_in, d_sae), "decoder.bias": _rand(gen, d_in, scale=0.1)},
              str(root / folder / "checkpoints" / "final.safetensors"))
    return folder


def write_llama_scope_r1(root: Path, layer: int = 3, *, d_in: int = 16, expansion: int = 4, seed: int = 0) -> str:
    """`800M-Slimpajama-0-OpenR1-Math-220k/L{L}R/{config.json, sae_weights.safetensors}`."""
    gen = torch.Generator().manual_seed(seed)
    folder = f"800M-Slimpajama-0-OpenR1-Math-220k/L{layer}R"
    (root / folder).mkdir(parents=True)
    d_sae = d_in * expansion
    (root / folder / "config.json").write_text(json.dumps(
        {"d_model": d_in, "expansion_factor": expansion, "hook_point_in": f"blocks.{layer}.hook_resid_post",
         "hook_point_out": f"blocks.{layer}.hook_resid_post", "act_fn": "jumprelu"}))
    save_file({"encoder.weight": _rand(gen, d_sae, d_in), "encoder.bias": _rand(gen, d_sae, scale=0.1),
               "decoder.weight": _rand(gen, d_in, d_sae), "decoder.bias": _rand(gen, d_in, scale=0.1),
               "log_jumprelu_threshold": torch.log(_threshold(gen, d_sae) + 0.01)},
              str(root / folder / "sae_weights.safetensors"))
    return folder


def write_mwhanna(root: Path, layers: tuple[int, ...] = (0, 1), *, d_in: int = 16, d_sae: int = 64,
                  config_yaml: bool = True, wandb_name: str = "wandb-config.yaml", skip: bool = False,
                  seed: int = 0) -> list[str]:
    """`layer_{L}.safetensors` + `config.yaml` + `wandb-config.yaml` at a circuit-tracer repo's root."""
    gen = torch.Generator().manual_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        tensors = {"W_enc": _rand(gen, d_sae, d_in), "b_enc": _rand(gen, d_sae, scale=0.1),
                   "W_dec": _rand(gen, d_sae, d_in), "b_dec": _rand(gen, d_in, scale=0.1)}
        if skip:
            tensors["W_skip"] = _rand(gen, d_in, d_in, scale=0.1)
        save_file(tensors, str(root / f"layer_{layer}.safetensors"))
    if config_yaml:
        (root / "config.yaml").write_text(
            "model_name: Qwen/Qwen3-4B\nfeature_input_hook: mlp.hook_in\nfeature_output_hook: mlp.hook_out\n"
            "scan: mwhanna/qwen3-4b-transcoders\ntranscoders:\n"
            + "".join(f"  - hf://mwhanna/qwen3-4b-transcoders/layer_{layer}.safetensors\n" for layer in layers))
    (root / wandb_name).write_text(
        f"d_model:\n  value: {d_in}\nd_feature:\n  value: {d_sae}\nbatch_size:\n  value: 64\n")
    return [f"layer_{layer}.safetensors" for layer in layers]


def write_mntss_clt(root: Path, n_layers: int = 3, *, d_in: int = 16, d_sae: int = 32, seed: int = 0) -> list[str]:
    """`W_enc_{L}.safetensors` / `W_dec_{L}.safetensors` per layer + `config.yaml` of a cross-layer transcoder."""
    gen = torch.Generator().manual_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    for layer in range(n_layers):
        save_file({f"W_enc_{layer}": _rand(gen, d_sae, d_in), f"b_enc_{layer}": _rand(gen, d_sae, scale=0.1),
                   f"b_dec_{layer}": _rand(gen, d_in, scale=0.1)}, str(root / f"W_enc_{layer}.safetensors"))
        save_file({f"W_dec_{layer}": _rand(gen, d_sae, n_layers - layer, d_in)},
                  str(root / f"W_dec_{layer}.safetensors"))
    (root / "config.yaml").write_text("model_name: google/gemma-2-2b\nmodel_kind: cross_layer_transcoder\n"
                                      "feature_input_hook: hook_resid_mid\nfeature_output_hook: hook_mlp_out\n")
    return [str(layer) for layer in range(n_layers)]


def write_goodfire(root: Path, name: str = "Llama-3.1-8B-Instruct-SAE-l19.pth", *, d_in: int = 16, d_sae: int = 64,
                   seed: int = 0) -> str:
    """One Goodfire `.pth` (nn.Linear state-dict names)."""
    gen = torch.Generator().manual_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    torch.save({"encoder_linear.weight": _rand(gen, d_sae, d_in), "encoder_linear.bias": _rand(gen, d_sae, scale=0.1),
                "decoder_linear.weight": _rand(gen, d_in, d_sae), "decoder_linear.bias": _rand(gen, d_in, scale=0.1)},
               root / name)
    return name


def write_deepseek_r1(root: Path, layer: int = 19, *, d_in: int = 16, d_sae: int = 64, seed: int = 0) -> str:
    """One `DeepSeek-R1-Distill-Llama-8B-SAE-l{L}.pt`."""
    gen = torch.Generator().manual_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    name = f"DeepSeek-R1-Distill-Llama-8B-SAE-l{layer}.pt"
    torch.save({"encoder.weight": _rand(gen, d_sae, d_in), "encoder.bias": _rand(gen, d_sae, scale=0.1),
                "decoder.weight": _rand(gen, d_in, d_sae), "decoder.bias": _rand(gen, d_in, scale=0.1)}, root / name)
    return name


def write_connor_hook_z(root: Path, layers: tuple[int, ...] = (0, 1), *, d_in: int = 32, d_sae: int = 64,
                        seed: int = 0) -> list[str]:
    """`gpt2-small_L{L}_Hcat_z_....pt` + `..._cfg.json` pairs."""
    gen = torch.Generator().manual_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for layer in layers:
        run = f"gpt2-small_L{layer}_Hcat_z_lr1.20e-03_l11.80e+00_ds{d_sae}_bs4096_v9"
        torch.save({"W_enc": _rand(gen, d_in, d_sae), "W_dec": _rand(gen, d_sae, d_in),
                    "b_enc": _rand(gen, d_sae, scale=0.1), "b_dec": _rand(gen, d_in, scale=0.1)}, root / f"{run}.pt")
        (root / f"{run}_cfg.json").write_text(json.dumps(
            {"act_size": d_in, "dict_size": d_sae, "act_name": f"blocks.{layer}.attn.hook_z", "layer": layer,
             "model_name": "gpt2-small", "site": "z"}))
        names.append(f"{run}.pt")
    return names


def write_temporal(root: Path, layer: int = 12, *, d_in: int = 16, exp_factor: int = 4, n_heads: int = 2,
                   bottleneck: int = 4, n_attn_layers: int = 1, tied: bool = True, diff_type: str = "topk",
                   seed: int = 0) -> str:
    """`gemma-2-2B/layer_{L}/temporal/{conf.yaml, latest_ckpt.safetensors}` of `canrager/temporalSAEs`."""
    gen = torch.Generator().manual_seed(seed)
    folder = f"gemma-2-2B/layer_{layer}/temporal"
    (root / folder).mkdir(parents=True)
    d_sae = d_in * exp_factor
    (root / folder / "conf.yaml").write_text(
        f"llm:\n  dimin: {d_in}\nsae:\n  exp_factor: {exp_factor}\n  n_heads: {n_heads}\n"
        f"  n_attn_layers: {n_attn_layers}\n  bottleneck_factor: {bottleneck}\n  sae_diff_type: {diff_type}\n"
        f"  kval_topk: 6\n  tied_weights: {str(tied).lower()}\n  scaling_factor: 0.7\ndata:\n  dtype: float32\n")
    tensors = {"D": _rand(gen, d_sae, d_in, scale=1.0), "b": _rand(gen, d_in, scale=0.1)}
    if not tied:
        tensors["E"] = _rand(gen, d_in, d_sae, scale=1.0)
    n_embds = d_sae // bottleneck
    for i in range(n_attn_layers):
        for name, (rows, cols) in {"k_ctx": (n_embds, d_sae), "q_target": (n_embds, d_sae),
                                   "v_ctx": (d_sae, d_sae), "c_proj": (d_sae, d_sae)}.items():
            tensors[f"attn_layers.{i}.{name}.weight"] = _rand(gen, rows, cols, scale=0.2)
            tensors[f"attn_layers.{i}.{name}.bias"] = _rand(gen, rows, scale=0.05)
    save_file(tensors, str(root / folder / "latest_ckpt.safetensors"))
    return folder


@contextlib.contextmanager
def local_hub_for_saelens(root: Path) -> Iterator[None]:
    """Make SAELens's loaders fetch repo files from `root` (the repo's files) instead of the Hub: its download and
    header-reading helpers are pointed at the local copy; everything else is SAELens's own code."""
    from huggingface_hub.utils import EntryNotFoundError
    from sae_lens.loading import pretrained_sae_loaders as loaders

    def download(repo_id: str, filename: str | None = None, *args: Any, subfolder: str | None = None,
                 **kwargs: Any) -> str:
        name = str(filename if filename is not None else args[0])
        path = root / subfolder / name if subfolder else root / name
        if not path.is_file():
            raise EntryNotFoundError(f"{name} not found in {repo_id}")
        return str(path)

    def shapes(repo_id: str, filename: str) -> dict[str, list[int]]:
        from safetensors import safe_open

        with safe_open(str(root / filename), framework="pt") as fh:
            return {k: list(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118

    saved = (loaders.hf_hub_download, loaders.get_safetensors_tensor_shapes)
    loaders.hf_hub_download, loaders.get_safetensors_tensor_shapes = download, shapes  # type: ignore[assignment]
    try:
        yield
    finally:
        loaders.hf_hub_download, loaders.get_safetensors_tensor_shapes = saved


def saelens_reference(conversion_func: str, repo_id: str, sae_path: str, root: Path, *,
                      overrides: dict[str, Any] | None = None, norm_scaling_factor: float | None = None) -> Any:
    """SAELens's own SAE for `sae_path` of the repo laid out under `root`, built as `SAE.from_pretrained` builds it
    (its loader, its config defaulting, its SAE class, strict state-dict loading, the norm-scaling fold)."""
    import warnings

    from sae_lens import SAE as LensSAE
    from sae_lens.loading.pretrained_sae_loaders import NAMED_PRETRAINED_SAE_LOADERS, handle_config_defaulting

    with warnings.catch_warnings(), local_hub_for_saelens(root):
        warnings.simplefilter("ignore")
        cfg_overrides = {**(overrides or {}), "device": "cpu", "dtype": "float32"}
        cfg_dict, state_dict, _ = NAMED_PRETRAINED_SAE_LOADERS[conversion_func](
            repo_id=repo_id, folder_name=sae_path, device="cpu", force_download=False, cfg_overrides=cfg_overrides)
        cfg_dict = handle_config_defaulting(cfg_dict)
        sae_cfg = LensSAE.get_sae_config_class_for_architecture(cfg_dict["architecture"]).from_dict(cfg_dict)
        sae = LensSAE.get_sae_class_for_architecture(sae_cfg.architecture())(sae_cfg)
        sae.process_state_dict_for_loading(state_dict)
        sae.load_state_dict(state_dict, assign=True)
        if cfg_dict.get("normalize_activations") == "expected_average_only_in" and norm_scaling_factor is not None:
            sae.fold_activation_norm_scaling_factor(norm_scaling_factor)
        sae.cfg_dict = cfg_dict
        return sae.to(dtype=torch.float32)
