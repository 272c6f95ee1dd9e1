"""Builders that lay out small, seeded repos with the exact file layouts of real SAE releases.

Each builder writes `root/{owner}/{name}/{revision}/...` (the fake hub's layout, see `fake_hub`) and
returns the repo id. Weights are tiny random tensors; folder and file names match the real repos.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

GEMMA_SCOPE_REPO = "google/gemma-scope-2b-pt-res"
SAELENS_REPO = "mistudio-test/gpt2-small-saelens"
SPARSIFY_REPO = "EleutherAI/sae-pythia-tiny-32x"
DICTIONARY_LEARNING_REPO = "mistudio-test/pythia-tiny-dictionary-learning"
PLAIN_REPO = "mistudio-test/plain-model"
PRIVATE_REPO = "mistudio-test/private-saes"
PRIVATE_TOKEN = "hf_fake_private_token"

GEMMA_SCOPE_D_IN = 32
GEMMA_SCOPE_WIDTHS = {"width_16k": 256, "width_65k": 512}
GEMMA_SCOPE_L0S = {"width_16k": (22, 41, 82), "width_65k": (18, 60)}
GEMMA_SCOPE_LAYERS = (0, 5, 12)

_ZIP_DATE = (2024, 7, 31, 0, 0, 0)


def _revision_dir(root: Path, repo_id: str, revision: str = "main") -> Path:
    folder = Path(root) / repo_id / revision
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an uncompressed `.npz` exactly like `np.savez`, with fixed timestamps (reproducible bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE), buf.getvalue())


def build_gemma_scope(root: Path, seed: int = 0) -> str:
    """`layer_{L}/width_{W}/average_l0_{K}/params.npz` with JumpReLU weights (W_enc [d_in, d_sae], threshold)."""
    rng = np.random.default_rng(seed)
    base = _revision_dir(root, GEMMA_SCOPE_REPO)
    (base / "README.md").write_text("# Gemma Scope (tiny fake)\n")
    d_in = GEMMA_SCOPE_D_IN
    for layer in GEMMA_SCOPE_LAYERS:
        for width, d_sae in GEMMA_SCOPE_WIDTHS.items():
            for l0 in GEMMA_SCOPE_L0S[width]:
                write_npz(base / f"layer_{layer}" / width / f"average_l0_{l0}" / "params.npz", {
                    "W_dec": rng.standard_normal((d_sae, d_in), dtype=np.float32),
                    "W_enc": rng.standard_normal((d_in, d_sae), dtype=np.float32),
                    "b_dec": rng.standard_normal(d_in, dtype=np.float32),
                    "b_enc": rng.standard_normal(d_sae, dtype=np.float32),
                    "threshold": rng.random(d_sae, dtype=np.float32),
                })
    return GEMMA_SCOPE_REPO


def _saelens_sae(folder: Path, rng: np.random.Generator, *, d_in: int, d_sae: int, hook_name: str,
                 architecture: str = "standard", k: int | None = None) -> None:
    """One SAELens 6 folder: cfg.json, sae_weights.safetensors, sparsity.safetensors."""
    tensors = {
        "W_enc": rng.standard_normal((d_in, d_sae), dtype=np.float32),
        "b_enc": rng.standard_normal(d_sae, dtype=np.float32),
        "W_dec": rng.standard_normal((d_sae, d_in), dtype=np.float32),
        "b_dec": rng.standard_normal(d_in, dtype=np.float32),
    }
    if architecture == "jumprelu":
        tensors["threshold"] = rng.random(d_sae, dtype=np.float32)
    cfg: dict = {
        "d_in": d_in, "d_sae": d_sae, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": True,
        "normalize_activations": "none", "reshape_activations": "none",
        "metadata": {"sae_lens_version": "6.54.12", "sae_lens_training_version": "6.54.12",
                     "model_name": "gpt2", "hook_name": hook_name, "context_size": 128, "prepend_bos": True},
        "architecture": architecture,
    }
    if k is not None:
        cfg.update({"k": k, "rescale_acts_by_decoder_norm": False})
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "cfg.json", cfg)
    save_numpy(tensors, str(folder / "sae_weights.safetensors"))
    save_numpy({"sparsity": -rng.random(d_sae, dtype=np.float32) * 4}, str(folder / "sparsity.safetensors"))


def build_saelens(root: Path, seed: int = 1) -> str:
    """A SAELens release with nested subfolders (main), and a `v1` branch holding only the first SAE."""
    rng = np.random.default_rng(seed)
    base = _revision_dir(root, SAELENS_REPO)
    (base / "README.md").write_text("# SAELens release (tiny fake)\n")
    _saelens_sae(base / "blocks.0.hook_resid_pre", rng, d_in=16, d_sae=64, hook_name="blocks.0.hook_resid_pre")
    _saelens_sae(base / "jumprelu" / "blocks.1.hook_resid_post", rng, d_in=16, d_sae=48,
                 hook_name="blocks.1.hook_resid_post", architecture="jumprelu")
    _saelens_sae(base / "topk" / "deep" / "blocks.2.hook_resid_post", rng, d_in=16, d_sae=32,
                 hook_name="blocks.2.hook_resid_post", architecture="topk", k=4)
    v1 = _revision_dir(root, SAELENS_REPO, "v1")
    _saelens_sae(v1 / "blocks.0.hook_resid_pre", np.random.default_rng(seed + 100), d_in=16, d_sae=64,
                 hook_name="blocks.0.hook_resid_pre")
    return SAELENS_REPO


def build_sparsify(root: Path, seed: int = 2, layers: tuple[int, ...] = (0, 1)) -> str:
    """EleutherAI sparsify: top-level config.json, `layers.{L}/cfg.json` + `sae.safetensors` (bfloat16)."""
    gen = torch.Generator().manual_seed(seed)
    base = _revision_dir(root, SPARSIFY_REPO)
    d_in, d_sae, k = 16, 128, 8
    _write_json(base / "config.json", {
        "model": "EleutherAI/pythia-70m", "dataset": "EleutherAI/fineweb-edu-dedup-10b", "ctx_len": 2048,
        "hookpoints": [f"layers.{layer}" for layer in layers],
        "sae": {"expansion_factor": 8, "normalize_decoder": True, "num_latents": d_sae, "k": k},
    })
    for layer in layers:
        folder = base / f"layers.{layer}"
        _write_json(folder / "cfg.json", {"expansion_factor": 8, "normalize_decoder": True, "num_latents": d_sae,
                                          "k": k, "signed": False, "d_in": d_in})
        save_torch({
            "encoder.weight": torch.randn(d_sae, d_in, generator=gen).to(torch.bfloat16),
            "encoder.bias": torch.randn(d_sae, generator=gen).to(torch.bfloat16),
            "W_dec": torch.randn(d_sae, d_in, generator=gen).to(torch.bfloat16),
            "b_dec": torch.randn(d_in, generator=gen).to(torch.bfloat16),
        }, str(folder / "sae.safetensors"))
    return SPARSIFY_REPO


def build_dictionary_learning(root: Path, seed: int = 3) -> str:
    """dictionary_learning (SAEBench layout): `resid_post_layer_{L}/trainer_{i}/ae.pt` + `config.json`."""
    gen = torch.Generator().manual_seed(seed)
    base = _revision_dir(root, DICTIONARY_LEARNING_REPO)
    d_in, d_sae = 16, 64
    for trainer in (0, 1):
        folder = base / "resid_post_layer_3" / f"trainer_{trainer}"
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / "config.json", {
            "trainer": {"dict_class": "AutoEncoder", "activation_dim": d_in, "dict_size": d_sae, "layer": 3,
                        "lm_name": "EleutherAI/pythia-70m-deduped", "trainer_class": "StandardTrainer"},
            "buffer": {"ctx_len": 128},
        })
        torch.save({
            "encoder.weight": torch.randn(d_sae, d_in, generator=gen),
            "encoder.bias": torch.randn(d_sae, generator=gen),
            "decoder.weight": torch.randn(d_in, d_sae, generator=gen),
            "bias": torch.randn(d_in, generator=gen),
        }, folder / "ae.pt")
    return DICTIONARY_LEARNING_REPO


def build_plain(root: Path) -> str:
    """A repo with no SAE files (a tiny model card and config)."""
    base = _revision_dir(root, PLAIN_REPO)
    (base / "README.md").write_text("# Not an SAE repo\n")
    _write_json(base / "config.json", {"model_type": "gpt2", "n_embd": 16})
    return PLAIN_REPO


def build_private(root: Path, seed: int = 4) -> str:
    """A private SAELens repo that needs `PRIVATE_TOKEN`."""
    base = _revision_dir(root, PRIVATE_REPO)
    _saelens_sae(base / "blocks.0.hook_resid_pre", np.random.default_rng(seed), d_in=16, d_sae=32,
                 hook_name="blocks.0.hook_resid_pre")
    _write_json(Path(root) / PRIVATE_REPO / "fakehub.json", {"private": True, "token": PRIVATE_TOKEN})
    return PRIVATE_REPO


def build_all(root: Path) -> list[str]:
    """Build every demo repo under `root`; return their ids."""
    return [build_gemma_scope(root), build_saelens(root), build_sparsify(root),
            build_dictionary_learning(root), build_plain(root), build_private(root)]
