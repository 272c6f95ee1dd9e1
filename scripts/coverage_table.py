"""Render the README's SAE coverage table: registry SAEs per SAELens loader family and whether miStudio handles it.

Counts come from the installed sae-lens registry (`sae_lens/pretrained_saes.yaml`); "supported" comes from the
results file `tests/test_registry_coverage.py` writes (family variants that passed end to end).

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_registry_coverage.py
    .venv/bin/python scripts/coverage_table.py --readme       # rewrite the table in README.md
    .venv/bin/python scripts/coverage_table.py                # print it
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "test-artifacts" / "registry_coverage.json"
README = REPO_ROOT / "README.md"
START, END = "<!-- coverage-table:start -->", "<!-- coverage-table:end -->"
SAELENS_FAMILY = "saelens"  # releases without a conversion_func are in the SAELens format


def registry_path() -> Path:
    """The installed sae-lens's registry file (found without importing sae_lens, which is slow)."""
    spec = importlib.util.find_spec("sae_lens")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("sae-lens is not installed in this environment; install the dev dependencies first")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained_saes.yaml"


def registry_counts(path: Path) -> dict[str, tuple[int, int]]:
    """Family → (releases, SAEs), largest first."""
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    releases: dict[str, int] = defaultdict(int)
    saes: dict[str, int] = defaultdict(int)
    for entry in data.values():
        family = entry.get("conversion_func") or SAELENS_FAMILY
        releases[family] += 1
        saes[family] += len(entry.get("saes", []))
    return {f: (releases[f], saes[f]) for f in sorted(saes, key=lambda f: (-saes[f], f))}


def family_status(cases: list[dict[str, Any]]) -> str:
    """"yes" when every variant passed; otherwise what failed, at which stage."""
    if not cases:
        return "not tested"
    failed = [c for c in cases if not c["passed"]]
    if not failed:
        return f"yes ({len(cases)} variant{'s' if len(cases) > 1 else ''})"
    stages = sorted({c["stage"] for c in failed})
    head = "no" if len(failed) == len(cases) else f"partly ({len(cases) - len(failed)}/{len(cases)} variants)"
    names = ", ".join(c["variant"] for c in failed)
    return f"{head}: fails at {'/'.join(stages)} ({names})"


def render(counts: dict[str, tuple[int, int]], results: dict[str, Any]) -> str:
    by_family: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in results.get("cases", {}).values():
        by_family[case["family"]].append(case)
    version = importlib.metadata.version("sae-lens")
    total_releases = sum(r for r, _ in counts.values())
    total_saes = sum(s for _, s in counts.values())
    supported = sum(s for f, (_, s) in counts.items() if family_status(by_family[f]).startswith("yes"))
    lines = [
        f"SAELens {version} registry: {total_releases} releases, {total_saes:,} SAEs; "
        f"{supported:,} of them are in families whose every tested variant passes.",
        "",
        "| family (`conversion_func`) | releases | registry SAEs | supported |",
        "|---|---:|---:|---|",
    ]
    for family, (n_releases, n_saes) in counts.items():
        label = "none (SAELens format)" if family == SAELENS_FAMILY else f"`{family}`"
        lines.append(f"| {label} | {n_releases} | {n_saes:,} | {family_status(by_family[family])} |")
    return "\n".join(lines) + "\n"


def write_readme(table: str, readme: Path = README) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        sys.exit(f"{readme} has no {START} … {END} markers; add them under the 'SAE coverage' heading")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    readme.write_text(f"{before}{START}\n{table}{END}{after}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file of the coverage test")
    parser.add_argument("--readme", action="store_true", help="rewrite the table in README.md")
    args = parser.parse_args(argv)
    if not args.results.is_file():
        sys.exit(f"no results at {args.results}; run tests/test_registry_coverage.py first")
    table = render(registry_counts(registry_path()), json.loads(args.results.read_text()))
    if args.readme:
        write_readme(table)
    else:
        print(table, end="")


if __name__ == "__main__":
    main()
