"""Requests per second the `explain` job sustains against a local OpenAI-compatible server.

A tiny GPT-2 and a random SAE are extracted (real feature store), then `mistudio.autointerp.explain`'s job explains
every live feature through `tests/fakes/fake_openai.py` at `--concurrency` (default 64). The server (its own process unless
`--in-process`) answers after `--latency` seconds (0: as fast as it can, which measures the job's own overhead per feature: reading the evidence
from the store, building Neuronpedia's prompt, HTTP, parsing, storing the explanation and the label). With a
latency L the ideal is concurrency / L requests per second; the report gives the measured figure and its ratio to
the ideal.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_autointerp.py [--concurrency 64] [--features 1024]
        [--latency 0 0.25] [--method np_max-act-logits] [--in-process] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from fakes.fake_openai import FakeOpenAI  # noqa: E402

from mistudio.autointerp.explain import start_explain  # noqa: E402
from mistudio.autointerp.schemas import ExplainRequest  # noqa: E402
from mistudio.catalog.service import register_sae_from_path  # noqa: E402
from mistudio.demo import random_sae  # noqa: E402
from mistudio.extraction.service import start_extraction  # noqa: E402
from mistudio.saes.formats import write_saelens  # noqa: E402
from mistudio.studio import Studio  # noqa: E402
from mistudio.testing.tiny_models import build_tiny_model  # noqa: E402

ANSWER = "Method 1 succeeds: the max activating tokens are all the same.\nExplanation: the word the"


def _prepare(root: Path, d_sae: int) -> tuple[Path, str]:
    model = build_tiny_model("gpt2", root / "model")
    sae = random_sae(64, d_sae, "blocks.1.hook_resid_pre", model_name=str(model), context_size=64,
                     sparsity_bias=0.2)
    home = root / "home"
    studio = Studio.open(home=home)
    sae_id = register_sae_from_path(studio, write_saelens(sae, root / "sae"), name="bench", source="trained").id
    started = start_extraction(studio, sae_id, str(model), "builtin:corpus", submit=False, n_tokens=16384,
                               context_size=64, top_k=20, neuronpedia=False)
    assert studio.runner.run_inline(started.job_id).status == "completed"
    return home, sae_id


@contextmanager
def _server(latency: float, in_process: bool) -> Iterator[tuple[str, FakeOpenAI | None]]:
    """The fake server: in its own process (default, so it does not share this process's GIL with the job), or
    as a thread of this one (`--in-process`, which also reports how many requests it saw at once)."""
    if in_process:
        with FakeOpenAI(lambda body: ANSWER, delay_s=latency) as fake:
            yield fake.url, fake
        return
    proc = subprocess.Popen([sys.executable, "-m", "fakes.fake_openai", "--latency", str(latency), "--answer",
                             ANSWER], cwd=HERE.parent / "tests", stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip(), None
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _run(template: Path, sae_id: str, root: Path, concurrency: int, latency: float, method: str,
         in_process: bool) -> dict[str, Any]:
    home = root / f"run-{latency}"
    shutil.copytree(template, home)
    studio = Studio.open(home=home)
    with _server(latency, in_process) as (url, fake):
        req = ExplainRequest(endpoint=url, model="fake", method=method, concurrency=concurrency)
        job_id = start_explain(studio, sae_id, req, submit=False).job_id
        started = time.perf_counter()
        cpu = time.process_time()
        state = studio.runner.run_inline(job_id)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        in_flight = fake.max_in_flight if fake is not None else None
    result = state.result or {}
    requests = int(result.get("requests", 0))
    ideal = concurrency / latency if latency > 0 else None
    return {"latency_s": latency, "concurrency": concurrency, "status": state.status, "requests": requests,
            "explained": result.get("n_explained"), "failures": len(result.get("failures", [])),
            "job_seconds": result.get("elapsed_s"), "wall_seconds": round(wall, 3),
            "job_cpu_ms_per_feature": round(1000 * cpu / max(1, requests), 2),
            "requests_per_s": result.get("requests_per_s"), "max_in_flight_seen_by_server": in_flight,
            "ideal_requests_per_s": ideal,
            "fraction_of_ideal": round(result["requests_per_s"] / ideal, 3) if ideal else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--features", type=int, default=1024, help="SAE width (every live feature is explained)")
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.25],
                        help="seconds the server waits before each answer")
    parser.add_argument("--method", default="np_max-act-logits")
    parser.add_argument("--in-process", action="store_true", help="run the fake server as a thread of this process")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-autointerp-"))
    try:
        setup = time.perf_counter()
        template, sae_id = _prepare(root, args.features)
        setup_s = time.perf_counter() - setup
        runs = [_run(template, sae_id, root, args.concurrency, latency, args.method, args.in_process)
                for latency in args.latency]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = {"command": " ".join(["PYTHONPATH=src .venv/bin/python benchmarks/bench_autointerp.py", *sys.argv[1:]]),
              "method": args.method, "d_sae": args.features, "setup_seconds": round(setup_s, 1), "runs": runs}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(report["command"])
    for run in runs:
        ideal = (f", ideal {run['ideal_requests_per_s']:.0f} req/s ({run['fraction_of_ideal']:.0%})"
                 if run["ideal_requests_per_s"] else "")
        seen = run["max_in_flight_seen_by_server"]
        seen_text = f"; server saw {seen} in flight" if seen is not None else ""
        print(f"latency {run['latency_s']}s, concurrency {run['concurrency']}: {run['requests']} requests in "
              f"{run['job_seconds']}s = {run['requests_per_s']} req/s{ideal}; job CPU "
              f"{run['job_cpu_ms_per_feature']} ms/feature{seen_text}; {run['failures']} failures")


if __name__ == "__main__":
    main()
