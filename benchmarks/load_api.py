"""Load test of the REST API: dozens of concurrent clients paging SAEs and features and reading dashboards while
others hold Server-Sent-Event streams, with an extraction and an export running in the server's worker.

    .venv/bin/python benchmarks/load_api.py [--clients 32] [--streams 8] [--seconds 30]
        [--database-url postgresql+psycopg://user:pw@host/db]

A real `mistudio serve` runs on a fresh MISTUDIO_HOME (SQLite by default; `--database-url` names an empty
PostgreSQL database, e.g. one made with `createdb`). The setup builds the offline demo (a tiny GPT-2, a random
512-feature SAE, its dashboards) plus a second SAE, then starts an extraction of the second and an export of the
first through the API before the clients begin. Prints requests/s, latency percentiles per kind of request, the
number of errors (any non-2xx answer or transport failure) and how often the server logged "database is locked".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
FINISHED = ("completed", "failed", "cancelled")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(home: Path, database_url: str | None) -> dict[str, Any]:
    """The demo SAE with its dashboards, and a second SAE to extract during the load."""
    os.environ["MISTUDIO_HOME"] = str(home)
    if database_url:
        os.environ["MISTUDIO_DATABASE_URL"] = database_url
    from mistudio.catalog.service import register_sae_from_path
    from mistudio.demo import DEMO_HOOK, random_sae, run_demo
    from mistudio.saes.formats import write_saelens
    from mistudio.studio import Studio

    studio = Studio.open(home=home, database_url=database_url)
    demo = run_demo(studio, n_tokens=8192, d_sae=512, context_size=64)
    second = random_sae(128, 512, DEMO_HOOK, model_name=demo["model"], seed=7, context_size=64)
    with tempfile.TemporaryDirectory(dir=studio.settings.tmp_dir) as tmp:
        path = write_saelens(second, Path(tmp) / "second")
        demo["second_sae_id"] = register_sae_from_path(studio, path, name="load-test second SAE").id
    return demo


class Recorder:
    """Latencies and failures per kind of request."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.examples: list[str] = []

    def ok(self, kind: str, seconds: float) -> None:
        self.latency[kind].append(seconds)

    def fail(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {what[:200]}")


async def reader(client: httpx.AsyncClient, sae_id: str, n_features: int, until: float, rec: Recorder) -> None:
    """One client: pages SAEs and features and reads dashboards until `until`."""
    rng = random.Random()
    while time.monotonic() < until:
        kind = rng.choice(["saes", "features", "dashboard", "dashboard", "jobs"])
        params: dict[str, str | int]
        if kind == "saes":
            url, params = "/api/v1/saes", {"page": rng.randint(1, 3), "page_size": 10, "sort": "name"}
        elif kind == "features":
            url = f"/api/v1/saes/{sae_id}/features"
            params = {"page": rng.randint(1, 10), "page_size": 50,
                      "sort": rng.choice(["index", "frequency", "max", "mean"])}
        elif kind == "dashboard":
            url, params = f"/api/v1/saes/{sae_id}/features/{rng.randrange(n_features)}/dashboard", {}
        else:
            url, params = "/api/v1/jobs", {"page_size": 20}
        start = time.perf_counter()
        try:
            resp = await client.get(url, params=params)
        except httpx.HTTPError as exc:
            rec.fail(kind, f"{type(exc).__name__}: {exc}")
            continue
        if resp.status_code // 100 == 2:
            rec.ok(kind, time.perf_counter() - start)
        else:
            rec.fail(kind, f"{resp.status_code} {resp.text}")


async def streamer(client: httpx.AsyncClient, job_ids: list[str], until: float, rec: Recorder) -> None:
    """One client holding an SSE stream on a running job, reopening it (or another) until `until`."""
    rng = random.Random()
    while time.monotonic() < until:
        job_id = rng.choice(job_ids)
        start = time.perf_counter()
        try:
            async with client.stream("GET", f"/api/v1/jobs/{job_id}/events", timeout=None) as resp:
                if resp.status_code != 200:
                    rec.fail("sse", f"{resp.status_code}")
                    continue
                events = 0
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        events += 1
                        if events == 1:
                            rec.ok("sse-first-event", time.perf_counter() - start)
                    if time.monotonic() >= until:
                        break
        except httpx.HTTPError as exc:
            rec.fail("sse", f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(0.2)


async def load(base: str, demo: dict[str, Any], clients: int, streams: int, seconds: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=clients + streams + 4, max_keepalive_connections=clients + streams + 4)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        extraction = (await client.post(f"/api/v1/saes/{demo['second_sae_id']}/extract", json={
            "model": demo["model"], "dataset": "builtin:corpus", "n_tokens": 65536, "context_size": 64,
            "batch_size": 16})).json()
        export = (await client.post(f"/api/v1/saes/{demo['sae_id']}/export/neuronpedia",
                                    json={"config": {"format": "both"}})).json()
        job_ids = [j for j in (extraction.get("job_id"), export.get("job_id")) if j]
        n_features = (await client.get(f"/api/v1/saes/{demo['sae_id']}")).json()["d_sae"]
        rec = Recorder()
        until = time.monotonic() + seconds
        start = time.perf_counter()
        holders = [asyncio.create_task(streamer(client, job_ids, until, rec)) for _ in range(streams)]
        await asyncio.gather(*(reader(client, demo["sae_id"], n_features, until, rec) for _ in range(clients)))
        elapsed = time.perf_counter() - start
        for task in holders:  # a stream stays open until its job's next event; the load is over
            task.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
        jobs = {}
        deadline = time.monotonic() + 600
        for job_id in job_ids:  # let the jobs finish, so a failure under load is seen
            while time.monotonic() < deadline:
                job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
                if job["status"] in FINISHED:
                    break
                await asyncio.sleep(1)
            jobs[job["type"]] = job["status"] + (f" ({job.get('error_message')})" if job.get("error_message") else "")
    return {"rec": rec, "elapsed": elapsed, "jobs": jobs}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database (default: SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        print("preparing the demo SAE and its dashboards ...", flush=True)
        demo = prepare(home, args.database_url)
        port = _free_port()
        log = Path(tmp) / "server.log"
        env = {**os.environ, "MISTUDIO_HOME": str(home)}
        env.pop("MISTUDIO_API_TOKEN", None)
        if args.database_url:
            env["MISTUDIO_DATABASE_URL"] = args.database_url
        with open(log, "w") as out:
            server = subprocess.Popen([sys.executable, "-m", "mistudio.cli.main", "serve", "--port", str(port)],
                                      env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(240):
                try:
                    if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            result = asyncio.run(load(base, demo, args.clients, args.streams, args.seconds))
        finally:
            server.terminate()
            server.wait(timeout=60)
        server_log = log.read_text(errors="replace")
    rec: Recorder = result["rec"]
    total = sum(len(v) for k, v in rec.latency.items() if k != "sse-first-event")
    errors = sum(rec.errors.values())
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"\n{backend}: {args.clients} clients + {args.streams} SSE streams for {result['elapsed']:.0f} s, "
          f"with {', '.join(f'{k}: {v}' for k, v in result['jobs'].items())}")
    print(f"{total} requests, {total / result['elapsed']:.0f} requests/s, {errors} errors, "
          f"'database is locked' in the server log: {server_log.count('database is locked')}")
    print("\n| request | count | p50 ms | p99 ms | max ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind in sorted(set(rec.latency) | set(rec.errors)):
        values = rec.latency.get(kind, [])
        print(f"| {kind} | {len(values)} | {1000 * statistics.median(values) if values else float('nan'):.0f} | "
              f"{1000 * _pct(values, 0.99):.0f} | {1000 * max(values) if values else float('nan'):.0f} | "
              f"{rec.errors.get(kind, 0)} |")
    every = [v for k, vs in rec.latency.items() if k != "sse-first-event" for v in vs]
    print(f"| all requests | {len(every)} | {1000 * statistics.median(every):.0f} | {1000 * _pct(every, 0.99):.0f} | "
          f"{1000 * max(every):.0f} | {errors} |")
    for example in rec.examples:
        print("error:", example)
    return 1 if errors or "database is locked" in server_log else 0


if __name__ == "__main__":
    sys.exit(main())
