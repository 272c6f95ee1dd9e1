"""Benchmark the miStudio dashboard engine on a random-weight model of a real shape.

    python benchmarks/bench_extraction.py                       # GPT-2-small shape, layer 8, 16,384 features, CPU
    python benchmarks/bench_extraction.py --n-tokens 131072     # more tokens
    python benchmarks/bench_extraction.py --device cuda --shape gemma-2-2b --layer 12 --n-tokens 4194304

Prints tokens/s, seconds and peak memory. `--save DIR` also writes the model (HF folder), the SAE (SAELens
folder) and the token windows (`tokens.pt`) so bench_vs_saedashboard.py can run another tool on the same inputs.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, Gemma2Config, GPT2Config

from mistudio.datasets.windows import Windows
from mistudio.demo import random_sae
from mistudio.extraction.engine import ExtractionSettings, run_extraction
from mistudio.lm.hooks import capture_activations
from mistudio.lm.loading import LoadedModel
from mistudio.testing.tiny_models import build_tokenizer

SHAPES = {
    "gpt2-small": lambda: GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257,
                                     bos_token_id=0, eos_token_id=0),
    "gemma-2-2b": lambda: Gemma2Config(hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                                       num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                                       vocab_size=256000, query_pre_attn_scalar=256, sliding_window=4096,
                                       final_logit_softcapping=30.0, attn_logit_softcapping=50.0,
                                       bos_token_id=0, eos_token_id=0, pad_token_id=1),
}


def build_inputs(shape: str, layer: int, d_sae: int, n_tokens: int, context_size: int, device: str,
                 dtype: torch.dtype, seed: int = 0, target_density: float = 0.005) -> tuple[LoadedModel, object,
                                                                                            Windows]:
    """A random model of `shape`, a random SAE on `blocks.{layer}.hook_resid_pre` calibrated so each feature
    fires on about `target_density` of tokens with typical values near 1, and random token windows (BOS first)."""
    torch.manual_seed(seed)
    config = SHAPES[shape]()
    if shape == "gemma-2-2b":
        config._attn_implementation = "eager"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.eval().requires_grad_(False)
    tokenizer = build_tokenizer(vocab_size=300)
    d_model = config.hidden_size
    n_heads = config.num_attention_heads
    loaded = LoadedModel(model=model, tokenizer=tokenizer, family=config.model_type,
                         n_layers=config.num_hidden_layers, d_model=d_model, n_heads=n_heads,
                         n_kv_heads=getattr(config, "num_key_value_heads", n_heads),
                         d_head=getattr(config, "head_dim", None) or d_model // n_heads,
                         vocab_size=config.vocab_size, device=torch.device(device), dtype=dtype, name=shape)
    hook = f"blocks.{layer}.hook_resid_pre"
    n_windows = max(1, n_tokens // context_size)
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(2, config.vocab_size, (n_windows, context_size), generator=gen)
    tokens[:, 0] = tokenizer.bos_token_id
    windows = Windows(tokens=tokens, document=torch.arange(n_windows), offset=torch.zeros(n_windows, dtype=torch.long),
                      dataset="random-tokens", prepend_bos=True, bos_token_id=tokenizer.bos_token_id)
    sae = random_sae(d_model, d_sae, hook, model_name=shape, seed=seed, context_size=context_size).to(device)
    with torch.no_grad():  # calibrate b_enc: each feature fires on ~target_density of a calibration batch
        x = capture_activations(loaded, tokens[:8].to(device), None, hook)[:, 1:].reshape(-1, d_model).float()
        pre = (x - sae.b_dec) @ sae.W_enc
        sae.b_enc.copy_(-torch.quantile(pre[: 4096], 1 - target_density, dim=0))
        active = torch.relu(pre[:4096] + sae.b_enc)
        scale = 1.0 / active[active > 0].median()  # typical active value ≈ 1 (relu is homogeneous)
        sae.W_enc.mul_(scale)
        sae.b_enc.mul_(scale)
    return loaded, sae, windows


def peak_rss_gb() -> float:
    """Peak resident set size of this process in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="gpt2-small")
    p.add_argument("--layer", type=int, default=8)
    p.add_argument("--d-sae", type=int, default=16384)
    p.add_argument("--n-tokens", type=int, default=32768)
    p.add_argument("--context-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--feature-chunk", type=int, default=4096)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, help="model dtype (default: bfloat16 on cuda, float32 on cpu)")
    p.add_argument("--out", default="/tmp/mistudio-bench", help="feature store folder (overwritten)")
    p.add_argument("--save", default=None, help="also save model / SAE / tokens here for other tools")
    args = p.parse_args(argv)

    import shutil

    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if args.device.startswith("cuda")
                                                           else torch.float32)
    t0 = time.perf_counter()
    loaded, sae, windows = build_inputs(args.shape, args.layer, args.d_sae, args.n_tokens, args.context_size,
                                        args.device, dtype)
    setup_s = time.perf_counter() - t0
    if args.save:
        save = Path(args.save)
        save.mkdir(parents=True, exist_ok=True)
        loaded.model.save_pretrained(save / "model")
        loaded.tokenizer.save_pretrained(save / "model")
        from mistudio.saes.formats import write_saelens

        write_saelens(sae.to("cpu"), save / "sae", overwrite=True)
        sae.to(args.device)
        torch.save(windows.tokens, save / "tokens.pt")
    shutil.rmtree(args.out, ignore_errors=True)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t1 = time.perf_counter()
    store = run_extraction(loaded, sae, windows, args.out, device=args.device,
                           settings=ExtractionSettings(top_k=args.top_k, batch_size=args.batch_size,
                                                       feature_chunk=args.feature_chunk, checkpoint_every=10**9))
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    total_s = time.perf_counter() - t1
    n_tok = len(windows) * windows.context_size
    result = {
        "shape": args.shape, "layer": args.layer, "d_sae": args.d_sae, "device": args.device, "dtype": str(dtype),
        "n_tokens": n_tok, "context_size": args.context_size, "batch_size": args.batch_size,
        "setup_s": round(setup_s, 2), "total_s": round(total_s, 2),
        "pass_s": store.manifest["timings"]["pass_s"],
        "tokens_per_s_pass": store.manifest["timings"]["tokens_per_s"],
        "tokens_per_s_end_to_end": round(n_tok / total_s, 1),
        "peak_rss_gb": round(peak_rss_gb(), 2),
        "mean_l0": float(store.summary_arrays()["frequency"].sum()),
    }
    if args.device.startswith("cuda"):
        result["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
        result["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
