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

import json
from pathlib import Path

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
