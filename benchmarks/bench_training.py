"""Training throughput and quality: miStudio's run loop (`training.run.run_training`) against SAELens's
`LanguageModelSAETrainingRunner` on the same model weights, hook, text and hyper-parameters.

    .venv/bin/python benchmarks/bench_training.py [--n-tokens 400000] [--architecture topk] [--k 32]
        [--d-sae 2048] [--batch-tokens 4096] [--device cpu|cuda] [--dtype float32|bfloat16]
        [--shape tiny|gemma-2-2b] [--layers N] [--vocab V] [--threads T] [--only ours|saelens] [--json]

* Model: `--shape tiny` (default) is a random-weight GPT-2 from `mistudio.testing.tiny_models` with d_model 256 and
  4 layers, its tokenizer trained on the shipped corpus; `--shape gemma-2-2b` is a random-weight model of
  Gemma-2-2B's shape (26 layers, d_model 2304, 8 heads of 256, d_mlp 9216, vocab 256,000), for a GPU
  (`--device cuda --dtype bfloat16 --d-sae 16384`; `--dtype` is the model's, both SAEs train in float32;
  `--layers`/`--vocab` shrink it for a smoke test). SAELens gets a TransformerLens HookedTransformer holding the
  same weights (TransformerLens' own weight converter, no processing), we get the HF model.
* Threads: `--threads 1` pins torch to one CPU thread, so on a shared machine both sides get the same share;
  tokens per CPU-second is then the steadier comparison (wall time moves with the other jobs' load).
* Data: the shipped corpus (`builtin:corpus`) split by paragraph: 90 % for training (repeated in reshuffled orders
  until it holds the token budget: the corpus is small), 10 % held out for the evaluation.
* Hyper-parameters: one SAE at `--hook` (default the middle layer's `hook_resid_post`) with our budget-aware schedule
  (`training.config.default_schedule`: lr, warm-up, decay, dead-feature window) given to both, the same batch,
  context size 128, `expected_average_only_in` normalisation (SAELens estimates it from as many tokens as we do),
  special tokens left out of the training batches on both sides, no W&B, no intermediate checkpoints for SAELens
  (ours writes its checkpoints, as `mistudio train` does), no periodic evals on either side.
* Measured: wall time of the training call (tokenisation, norm estimate and buffer filling included; model
  loading excluded), tokens trained per second, then both final SAEs evaluated by `training.evaluate.evaluate_sae`
  on the same held-out windows: explained variance, L0, dead fraction, CE loss recovered, KL divergence.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

CONTEXT = 128
GEMMA_2_2B = {"hidden_size": 2304, "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4,
              "head_dim": 256, "intermediate_size": 9216, "vocab_size": 256_000}


def _paragraphs() -> list[str]:
    from mistudio.datasets.sources import load_texts

    return [text for _, text in load_texts("builtin:corpus").iter_docs() if text.strip()]


def _split(texts: list[str], seed: int) -> tuple[list[str], list[str]]:
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, len(texts) // 10)
    return [texts[i] for i in order[n_eval:]], [texts[i] for i in order[:n_eval]]


def _repeated(texts: list[str], tokens_per_pass: int, n_tokens: int, seed: int) -> list[str]:
    passes = max(1, math.ceil(1.3 * n_tokens / max(1, tokens_per_pass)))
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(passes):
        shuffled = list(texts)
        rng.shuffle(shuffled)
        out.extend(shuffled)
    return out


def _build_model(args: argparse.Namespace, out: Path, corpus: list[str]) -> Path:
    from mistudio.testing.tiny_models import build_tiny_model

    if args.shape == "tiny":
        return build_tiny_model("gpt2", out, n_layers=args.layers or 4, d_model=256, vocab_size=2048,
                                corpus_texts=corpus)
    from transformers import AutoModelForCausalLM, Gemma2Config

    from mistudio.testing.tiny_models import build_tokenizer

    tokenizer = build_tokenizer(corpus_texts=corpus, vocab_size=4096, style="llama")
    shape = {**GEMMA_2_2B, **({"num_hidden_layers": args.layers} if args.layers else {}),
             **({"vocab_size": args.vocab} if args.vocab else {})}
    config = Gemma2Config(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, dtype="bfloat16")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def _transformer_lens_model(path: Path, loaded: Any, shape: str, device: str, dtype: torch.dtype) -> Any:
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens import loading_from_pretrained as tl_loading

    if shape == "tiny":
        cfg = tl_loading.convert_hf_model_config(str(path))
    else:  # TransformerLens builds Gemma configs from official names only: start from Gemma-2-2B's, then fit it
        text = loaded.model.config
        cfg = tl_loading.convert_hf_model_config("google/gemma-2-2b")
        cfg.update(d_model=text.hidden_size, d_head=text.head_dim, rotary_dim=text.head_dim,
                   n_heads=text.num_attention_heads, d_mlp=text.intermediate_size, n_layers=text.num_hidden_layers,
                   n_ctx=text.max_position_embeddings, eps=text.rms_norm_eps, d_vocab=text.vocab_size,
                   n_key_value_heads=text.num_key_value_heads, window_size=text.sliding_window,
                   attn_types=["local" if t == "sliding_attention" else "global" for t in text.layer_types])
    cfg.update(model_name="bench", tokenizer_name=str(path), init_weights=False, device=device, dtype=dtype,
               n_devices=1, default_prepend_bos=True, from_checkpoint=False)
    tl_cfg = HookedTransformerConfig.from_dict(cfg)
    model = HookedTransformer(tl_cfg, move_to_device=False)
    state = tl_loading.get_pretrained_state_dict(str(path), tl_cfg, loaded.model)
    model.load_and_process_state_dict(state, fold_ln=False, center_writing_weights=False, center_unembed=False,
                                      fold_value_biases=False)
    return model.to(device).eval()


def _spec(args: argparse.Namespace, d_in: int) -> Any:
    from mistudio.training.config import SAESpec

    return SAESpec(architecture=args.architecture, hook_name=args.hook, d_in=d_in, d_sae=args.d_sae,
                   k=args.k if args.architecture in ("topk", "batchtopk", "matryoshka_batchtopk") else None,
                   seed=args.seed)


def _our_config(args: argparse.Namespace, loaded: Any, data: Path) -> Any:
    from mistudio.training.run import RunConfig

    return RunConfig(model=str(args.model_path), dataset=str(data), specs=[_spec(args, loaded.d_model)],
                     n_tokens=args.n_tokens, batch_tokens=args.batch_tokens, context_size=CONTEXT, seed=args.seed,
                     eval_every_tokens=args.n_tokens, eval_windows=4)


def run_ours(args: argparse.Namespace, loaded: Any, data: Path, work: Path) -> dict[str, Any]:
    from mistudio.training.run import run_training

    cfg = _our_config(args, loaded, data)
    started, cpu = time.perf_counter(), time.process_time()
    result = run_training(loaded, cfg, work / "ours-run", device=args.device)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"sae": result.saes[0], "tokens": result.tokens_seen, "wall_s": wall, "cpu_s": cpu}


def run_saelens(args: argparse.Namespace, loaded: Any, texts: list[str], schedule: Any, work: Path) -> dict[str, Any]:
    from datasets import Dataset
    from sae_lens import LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner, LoggingConfig
    from sae_lens.saes.standard_sae import StandardTrainingSAEConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAEConfig

    from mistudio.saes.formats import read_sae

    dtype = "float32"  # the SAE (and its activations) train in float32 on both sides; --dtype is the LM's
    common = {"d_in": loaded.d_model, "d_sae": args.d_sae, "dtype": dtype, "device": args.device,
              "normalize_activations": "expected_average_only_in"}
    if args.architecture == "topk":
        sae_cfg: Any = TopKTrainingSAEConfig(k=args.k, **common)
    elif args.architecture == "standard":
        sae_cfg = StandardTrainingSAEConfig(**common)
    else:
        raise SystemExit(f"the SAELens side of this benchmark covers topk and standard, not {args.architecture}")
    model = _transformer_lens_model(args.model_path, loaded, args.shape, args.device, loaded.dtype)
    norm_tokens = 64 * (CONTEXT - 1)  # what our run samples for its norm factor (RunConfig.norm_sample_windows)
    # SAELens's mixing buffer holds n_batches_in_buffer × context_size activations: as many as our buffer holds
    buffer_windows = _our_config(args, loaded, Path("unused")).resolved_buffer_windows
    cfg = LanguageModelSAERunnerConfig(
        sae=sae_cfg, model_name="bench", hook_name=args.hook, dataset_path="builtin-corpus",
        is_dataset_tokenized=False, streaming=False, context_size=CONTEXT, training_tokens=args.n_tokens,
        n_batches_in_buffer=buffer_windows,
        train_batch_size_tokens=args.batch_tokens, lr=schedule.lr, lr_warm_up_steps=schedule.warm_up_steps,
        lr_decay_steps=schedule.decay_steps, dead_feature_window=schedule.dead_feature_window,
        device=args.device, dtype=dtype, seed=args.seed, prepend_bos=True, exclude_special_tokens=True,
        n_batches_for_norm_estimate=max(1, math.ceil(norm_tokens / args.batch_tokens)),
        logger=LoggingConfig(log_to_wandb=False), n_checkpoints=0, checkpoint_path=str(work / "saelens-ckpt"),
        output_path=str(work / "saelens-out"), verbose=False,
    )
    runner = LanguageModelSAETrainingRunner(cfg, override_dataset=Dataset.from_dict({"text": texts}),
                                            override_model=model)
    started, cpu = time.perf_counter(), time.process_time()
    runner.run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    sae = read_sae(work / "saelens-out", device=args.device)
    return {"sae": sae, "tokens": args.n_tokens // args.batch_tokens * args.batch_tokens, "wall_s": wall,
            "cpu_s": cpu}


def _evaluate(loaded: Any, sae: Any, windows: Any, hook: str) -> dict[str, Any]:
    from mistudio.training.evaluate import evaluate_sae

    sae = sae.to(device=loaded.device, dtype=torch.float32)
    m = evaluate_sae(loaded, sae, windows, hook=hook, batch_size=8)
    return {"explained_variance": m.explained_variance, "l0": m.l0, "dead_fraction": m.dead_fraction,
            "ce_loss_recovered": m.ce_loss_recovered, "kl_div": m.kl_div}


def _table(rows: dict[str, dict[str, Any]]) -> str:
    head = (f"{'':10} {'tokens':>9} {'wall s':>8} {'tokens/s':>10} {'CPU s':>8} {'tok/CPU-s':>10} {'EV':>7} "
            f"{'L0':>7} {'dead':>6} {'CE rec':>7} {'KL':>7}")
    lines = [head]
    for name, r in rows.items():
        lines.append(f"{name:10} {r['tokens']:>9,} {r['wall_s']:>8.1f} {r['tokens_per_s']:>10,.0f} "
                     f"{r['cpu_s']:>8.1f} {r['tokens_per_cpu_s']:>10,.0f} "
                     f"{r['explained_variance']:>7.3f} {r['l0']:>7.1f} {r['dead_fraction']:>6.1%} "
                     f"{r['ce_loss_recovered']:>7.3f} {r['kl_div']:>7.4f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-tokens", type=int, default=400_000)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--architecture", default="topk", choices=("topk", "standard"))
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--d-sae", type=int, default=2048)
    parser.add_argument("--hook", default=None, help="default: blocks.<n_layers // 2>.hook_resid_post")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--shape", default="tiny", choices=("tiny", "gemma-2-2b"))
    parser.add_argument("--only", choices=("ours", "saelens"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=0, help="override the shape's layer count (smoke tests)")
    parser.add_argument("--vocab", type=int, default=0, help="override gemma-2-2b's vocabulary (smoke tests)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from mistudio.datasets.sources import load_texts
    from mistudio.datasets.windows import tokenize_windows
    from mistudio.lm.loading import load_model

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_texts, eval_texts = _split(_paragraphs(), args.seed)
        args.model_path = _build_model(args, work / "model", train_texts)
        loaded = load_model(args.model_path, device=args.device, dtype=args.dtype)
        args.hook = args.hook or f"blocks.{loaded.n_layers // 2}.hook_resid_post"
        per_pass = sum(len(loaded.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in train_texts)
        texts = _repeated(train_texts, per_pass, args.n_tokens, args.seed)
        data = work / "train.jsonl"
        data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        (work / "eval.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in eval_texts),
                                         encoding="utf-8")
        held_out = tokenize_windows(load_texts(work / "eval.jsonl"), loaded.tokenizer, context_size=CONTEXT,
                                    n_windows=32)
        from mistudio.training.config import default_schedule

        schedule = default_schedule(_spec(args, loaded.d_model), args.n_tokens, args.batch_tokens)
        runs: dict[str, dict[str, Any]] = {}
        if args.only != "saelens":
            runs["miStudio"] = run_ours(args, loaded, data, work)
        if args.only != "ours":
            runs["SAELens"] = run_saelens(args, loaded, texts, schedule, work)
        rows = {}
        for name, run in runs.items():
            rows[name] = {"tokens": run["tokens"], "wall_s": run["wall_s"],
                          "tokens_per_s": run["tokens"] / run["wall_s"], "cpu_s": run["cpu_s"],
                          "tokens_per_cpu_s": run["tokens"] / run["cpu_s"],
                          **_evaluate(loaded, run["sae"], held_out, args.hook)}
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "shape": args.shape, "device": args.device,
        "dtype": args.dtype, "architecture": args.architecture, "d_sae": args.d_sae, "k": args.k,
        "hook": args.hook, "batch_tokens": args.batch_tokens, "lr": schedule.lr,
        "warm_up_steps": schedule.warm_up_steps, "decay_steps": schedule.decay_steps,
        "torch_threads": torch.get_num_threads(), "runs": rows,
    }
    if "miStudio" in rows and "SAELens" in rows:
        report["speedup"] = rows["miStudio"]["tokens_per_s"] / rows["SAELens"]["tokens_per_s"]
        report["speedup_cpu"] = rows["miStudio"]["tokens_per_cpu_s"] / rows["SAELens"]["tokens_per_cpu_s"]
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"$ {report['command']}")
    print(f"{args.shape} model, {args.device} {args.dtype}, {args.architecture} d_sae={args.d_sae} k={args.k} at "
          f"{args.hook}, batch {args.batch_tokens} tokens, lr {schedule.lr:.2e}, warm-up {schedule.warm_up_steps}, "
          f"decay {schedule.decay_steps} steps, {torch.get_num_threads()} CPU threads")
    print(_table(rows))
    if "speedup" in report:
        print(f"miStudio / SAELens tokens/s: {report['speedup']:.2f}x wall, {report['speedup_cpu']:.2f}x per CPU "
              "second (the steadier figure on a shared machine)")


if __name__ == "__main__":
    main()
