"""Long fuzzing run of everything that reads user files (tests/test_fuzz_imports.py with thousands of cases per
target instead of CI's few dozen): prints one row per target (cases, seconds, cases/s, outcome) as Markdown.

    .venv/bin/python benchmarks/fuzz_imports.py --examples 2000 [--random] [-k EXPR]

`--random` draws fresh cases (CI's profile is derandomized, so the same cases every run); `-k` selects targets
as pytest does. The exit status is pytest's: 0 when every target only ever raised documented errors.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cases(output: str) -> dict[str, int]:
    """Test name → examples Hypothesis ran (passing + failing, all phases), from `--hypothesis-show-statistics`."""
    counts: dict[str, int] = {}
    current = None
    for line in output.splitlines():
        header = re.match(r"^\S*::(test_\S+?):$", line.strip())
        if header:
            current = header.group(1)
            continue
        ran = re.search(r"(\d+) passing, (\d+) failing", line)
        if current and ran:
            counts[current] = counts.get(current, 0) + int(ran.group(1)) + int(ran.group(2))
    return counts


def run(examples: int, random: bool, select: str | None,
        hang_seconds: float) -> tuple[int, list[tuple[str, int, float, str]]]:
    """Run the fuzz tests; (pytest exit status, [(target, cases run, seconds, outcome)])."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        env = {**os.environ, "MISTUDIO_FUZZ_EXAMPLES": str(examples),
               "MISTUDIO_FUZZ_HANG_SECONDS": str(hang_seconds), "MISTUDIO_FUZZ_RANDOM": "1" if random else "0"}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "0",
                   "tests/test_fuzz_imports.py", f"--junitxml={report}", "-W", "ignore::UserWarning",
                   "--hypothesis-show-statistics"]
        if select:
            command += ["-k", select]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        sys.stdout.write(done.stdout[-20000:])
        sys.stderr.write(done.stderr[-5000:])
        cases = _cases(done.stdout)
        rows = []
        for case in ET.parse(report).getroot().iter("testcase"):
            outcome = "failed" if case.find("failure") is not None or case.find("error") is not None else (
                "skipped" if case.find("skipped") is not None else "passed")
            name = case.get("name", "?")
            rows.append((name, cases.get(name, 0), float(case.get("time", 0)), outcome))
    return done.returncode, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2000, help="cases per target (default 2000)")
    parser.add_argument("--random", action="store_true", help="fresh random cases instead of the fixed ones")
    parser.add_argument("-k", dest="select", help="pytest -k expression selecting targets")
    parser.add_argument("--hang-seconds", type=float, default=10.0, help="a call slower than this fails")
    args = parser.parse_args()
    start = time.perf_counter()
    status, rows = run(args.examples, args.random, args.select, args.hang_seconds)
    total = time.perf_counter() - start
    print(f"\n{args.examples} cases per target, {'random' if args.random else 'fixed'} seed, "
          f"{total:.0f} s in all\n")
    print("| target | cases | seconds | cases/s | outcome |")
    print("|---|---:|---:|---:|---|")
    for name, cases, seconds, outcome in rows:
        rate = cases / seconds if seconds else 0.0
        print(f"| `{name.removeprefix('test_fuzz_')}` | {cases} | {seconds:.1f} | {rate:.0f} | {outcome} |")
    return status


if __name__ == "__main__":
    sys.exit(main())
