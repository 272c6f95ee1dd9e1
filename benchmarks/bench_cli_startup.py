"""How long commands that compute nothing take to start: `mistudio --help` and `mistudio sae list` against the
floor of `python -c "import sqlalchemy"` (what any command reading the catalog must load), each the median of a
few fresh interpreters, with whether torch got imported.

    .venv/bin/python benchmarks/bench_cli_startup.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CASES = {
    "python -c 'import sqlalchemy'": "import sqlalchemy",
    "mistudio --help": "from mistudio.cli.main import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass",
    "mistudio sae list": "from mistudio.cli.main import app\ntry:\n    app(['sae', 'list'])\nexcept SystemExit:\n    pass",
    "mistudio jobs list": "from mistudio.cli.main import app\ntry:\n    app(['jobs', 'list'])\nexcept SystemExit:\n"
                          "    pass",
}


def _run(code: str, env: dict[str, str]) -> tuple[float, bool]:
    probe = f"{code}\nimport sys\nsys.stderr.write('TORCH=%d' % ('torch' in sys.modules))"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, "TORCH=1" in done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "MISTUDIO_HOME": home, "COLUMNS": "120"}
        _run(CASES["mistudio sae list"], env)  # creates and migrates the database once
        report = {}
        for name, code in CASES.items():
            times, torch = zip(*(_run(code, env) for _ in range(args.runs)), strict=True)
            report[name] = {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                            "imports_torch": any(torch)}
    floor = report["python -c 'import sqlalchemy'"]["median_s"]
    for row in report.values():
        row["over_floor_s"] = round(row["median_s"] - floor, 3)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for name, row in report.items():
        print(f"{name:<32} median {row['median_s']:.3f} s  min {row['min_s']:.3f} s  "
              f"(+{row['over_floor_s']:.3f} s)  torch: {row['imports_torch']}")


if __name__ == "__main__":
    main()
