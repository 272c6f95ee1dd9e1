"""miStudio's engine vs SAEDashboard's Neuronpedia runner, same random-weight model, SAE and tokens.

    python benchmarks/bench_vs_saedashboard.py --d-sae 16384 --n-tokens 32768      # the full comparison
    python benchmarks/bench_vs_saedashboard.py --d-sae 1024 --n-tokens 4096        # a quick one

1. builds a GPT-2-small-shaped random model, a random SAE (unit-norm decoder rows, so SAEDashboard's
   `fold_W_dec_norm` changes nothing) and random token windows, and saves them (bench_extraction.py --save);
2. runs miStudio's engine on them in this process;
3. creates a virtualenv (`--venv`, default benchmarks/.venv-saedashboard) with `pip install sae-dashboard`
   (its pins clash with ours) and runs `NeuronpediaRunner(cfg).run()` there on the same files: the runner is
   used as is, except that the model comes from the saved HF weights (TransformerLens `convert_gpt2_weights`, no
   weight processing, since a hub download is not possible offline), the dataset store is stubbed and the saved
   tokens are placed where the runner looks for them (`tokens_{n}.pt`);
4. prints tokens/s, seconds and peak RSS of each, the throughput ratio, and how often both pick the same top
   examples: the strongest example (position and value) of each feature, and the share of our top-10 windows
   (max position and value) found in SAEDashboard's top group (it ranks token positions, not windows, and rounds
   values to 3 decimals, so values are compared within 1.5e-3).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

DRIVER = textwrap.dedent('''
    import json, resource, sys, time, types
    from pathlib import Path
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
    import sae_lens
    import sae_dashboard.neuronpedia.neuronpedia_runner as npr
    from sae_dashboard.neuronpedia.neuronpedia_runner_config import NeuronpediaRunnerConfig

    work, out, n_features_at_a_time, batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    end_batch = int(sys.argv[5]) if int(sys.argv[5]) >= 0 else None
    torch.set_grad_enabled(False)
    hf = AutoModelForCausalLM.from_pretrained(work / "model")
    # the folder was saved by a newer transformers: rebuild the tokenizer from tokenizer.json and re-save it
    PreTrainedTokenizerFast(tokenizer_file=str(work / "model" / "tokenizer.json"), bos_token="<|endoftext|>",
                            eos_token="<|endoftext|>", pad_token="<pad>").save_pretrained(work / "tokenizer-v4")
    tok = AutoTokenizer.from_pretrained(work / "tokenizer-v4")
    c = hf.config
    cfg = HookedTransformerConfig(n_layers=c.n_layer, d_model=c.n_embd, n_heads=c.n_head, d_head=c.n_embd // c.n_head,
                                  d_mlp=4 * c.n_embd, d_vocab=c.vocab_size, n_ctx=c.n_positions, act_fn="gelu_new",
                                  normalization_type="LN", original_architecture="GPT2LMHeadModel",
                                  model_name="gpt2-small", default_prepend_bos=True)
    model = HookedTransformer(cfg, tokenizer=tok)
    model.load_and_process_state_dict(convert_gpt2_weights(hf, cfg), fold_ln=False, center_writing_weights=False,
                                      center_unembed=False, fold_value_biases=False)
    del hf
    HookedTransformer.from_pretrained = classmethod(lambda cls, *a, **k: model)
    sae_lens.ActivationsStore.from_sae = classmethod(lambda cls, *a, **k: types.SimpleNamespace(context_size=0))
    npr.ActivationsStore = sae_lens.ActivationsStore
    npr.HookedTransformer = HookedTransformer
    tokens = torch.load(work / "tokens.pt")
    runner = npr.NeuronpediaRunner(NeuronpediaRunnerConfig(
        sae_set="bench", sae_path=str(work / "sae"), from_local_sae=True, outputs_dir=out, np_set_name="bench",
        huggingface_dataset_path="unused", n_prompts_total=tokens.shape[0], n_tokens_in_prompt=tokens.shape[1],
        n_prompts_in_forward_pass=batch, n_features_at_a_time=n_features_at_a_time, sparsity_threshold=1,
        model_dtype="float32", sae_dtype="float32", sae_device="cpu", model_device="cpu",
        activation_store_device="cpu", end_batch=end_batch))
    torch.save(tokens, Path(runner.cfg.outputs_dir) / f"tokens_{tokens.shape[0]}.pt")
    t0 = time.perf_counter()
    runner.run()
    seconds = time.perf_counter() - t0
    print("RESULT " + json.dumps({"seconds": seconds, "outputs_dir": runner.cfg.outputs_dir,
          "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}))
''')


def ensure_venv(venv: Path) -> Path:
    """A virtualenv with sae-dashboard installed (created on first use)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        cpu_index = subprocess.run([str(python), "-m", "pip", "install", "-q", "--index-url",
                                    "https://download.pytorch.org/whl/cpu", "torch"], check=False)
        if cpu_index.returncode != 0:  # no PyTorch index here: the torch this environment runs (a CPU build)
            import torch

            subprocess.run([str(python), "-m", "pip", "install", "-q", f"torch=={torch.__version__.split('+')[0]}"],
                           check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "sae-dashboard", "pyarrow<17"], check=True)
    return python


def their_top_examples(outputs_dir: Path, context_size: int) -> dict[int, list[tuple[float, int]]]:
    """feature → [(value at the qualifying token, its position in the window)] of SAEDashboard's top group
    (its values are rounded to 3 decimals; its token lists leave out the window's first token)."""
    result: dict[int, list[tuple[float, int]]] = {}
    for path in sorted(outputs_dir.glob("batch-*.json")):
        for feat in json.loads(path.read_text())["features"]:
            result[int(feat["feature_index"])] = [
                (float(a["values"][a["qualifying_token_index"]]),
                 int(a["qualifying_token_index"]) + context_size - len(a["values"]))
                for a in feat.get("activations", []) if a.get("bin_min", -1) == -1]
    return result


def _found(value: float, pos: int, pairs: list[tuple[float, int]]) -> bool:
    return any(p == pos and abs(v - value) <= 1.5e-3 + 1e-3 * abs(value) for v, p in pairs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d-sae", type=int, default=16384)
    p.add_argument("--n-tokens", type=int, default=32768)
    p.add_argument("--context-size", type=int, default=128)
    p.add_argument("--layer", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32, help="prompts per forward pass (both tools)")
    p.add_argument("--n-features-at-a-time", type=int, default=128, help="SAEDashboard feature batch")
    p.add_argument("--their-batches", type=int, default=0,
                   help="run only SAEDashboard's first N feature batches and extrapolate its time linearly "
                        "(0 = all; every feature batch re-reads all tokens, so its cost per batch is flat)")
    p.add_argument("--work", default="/tmp/mistudio-vs-saedashboard")
    p.add_argument("--venv", default=str(HERE / ".venv-saedashboard"))
    args = p.parse_args()

    from bench_extraction import main as bench_main

    work = Path(args.work)
    ours = bench_main(["--d-sae", str(args.d_sae), "--n-tokens", str(args.n_tokens), "--context-size",
                       str(args.context_size), "--layer", str(args.layer), "--batch-size", str(args.batch_size),
                       "--save", str(work), "--out", str(work / "ours")])
    python = ensure_venv(Path(args.venv))
    for stale in ("theirs", "cached_activations"):  # SAEDashboard skips batches whose output exists
        shutil.rmtree(work / stale, ignore_errors=True)
    (work / "driver.py").write_text(DRIVER)
    started = time.perf_counter()
    proc = subprocess.run([str(python), str(work / "driver.py"), str(work), str(work / "theirs"),
                           str(args.n_features_at_a_time), str(args.batch_size), str(args.their_batches - 1)],
                          capture_output=True, text=True,
                          cwd=work)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"SAEDashboard run failed (exit {proc.returncode})")
    theirs = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    theirs["wall_s"] = time.perf_counter() - started
    n_batches = -(-args.d_sae // args.n_features_at_a_time)
    ran = min(args.their_batches, n_batches) if args.their_batches > 0 else n_batches
    theirs["measured_s"] = theirs["seconds"]
    theirs["seconds"] = theirs["seconds"] * n_batches / ran

    from mistudio.store.feature_store import FeatureStore

    store = FeatureStore.open(work / "ours")
    theirs_top = their_top_examples(Path(theirs["outputs_dir"]), args.context_size)
    top = store.read_part("top_examples")
    same_best, found, compared = 0, 0.0, 0
    for f, pairs in theirs_top.items():
        mine = [(v, p) for v, p in zip(top["values"][f].tolist(), top["positions"][f].tolist(), strict=True)
                if v > 2e-3]
        if not pairs or not mine:
            continue
        compared += 1
        best = max(pairs)
        same_best += int(best[1] == mine[0][1] and abs(best[0] - mine[0][0]) <= 1.5e-3 + 1e-3 * mine[0][0])
        found += sum(_found(v, p, pairs) for v, p in mine[:10]) / len(mine[:10])
    n_tok = ours["n_tokens"]
    report = {
        "n_tokens": n_tok, "d_sae": args.d_sae,
        "mistudio": {"seconds": ours["total_s"], "tokens_per_s": round(n_tok / ours["total_s"], 1),
                     "peak_rss_gb": ours["peak_rss_gb"]},
        "saedashboard": {"seconds": round(theirs["seconds"], 2), "tokens_per_s": round(n_tok / theirs["seconds"], 1),
                         "peak_rss_gb": round(theirs["peak_rss_gb"], 2), "feature_batches_run": ran,
                         "feature_batches_total": n_batches, "measured_s": round(theirs["measured_s"], 2),
                         "extrapolated": ran < n_batches},
        "throughput_ratio": round(theirs["seconds"] / ours["total_s"], 2),
        "features_compared": compared,
        "same_strongest_example": round(same_best / max(compared, 1), 4),
        "our_top10_found_in_their_top_group": round(found / max(compared, 1), 4),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
