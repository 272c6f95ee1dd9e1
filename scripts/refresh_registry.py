"""Refresh miStudio's shipped copy of SAELens's registry from the installed sae-lens.

Copies `sae_lens/pretrained_saes.yaml` into `src/mistudio/data/` and records the sae-lens version and the
file's SHA-256 in `src/mistudio/data/pretrained_saes.source.json`. Run after upgrading the sae-lens dev
dependency: `python scripts/refresh_registry.py` (tests/test_registry.py fails until the copy matches).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys

from mistudio.saes.registry import SHIPPED_REGISTRY, SHIPPED_SOURCE, installed_source


def main() -> int:
    source = installed_source()
    if source is None:
        print("sae-lens is not installed here; install the dev extra (pip install -e '.[dev]') first",
              file=sys.stderr)
        return 1
    shutil.copyfile(source.path, SHIPPED_REGISTRY)
    digest = hashlib.sha256(SHIPPED_REGISTRY.read_bytes()).hexdigest()
    SHIPPED_SOURCE.write_text(json.dumps({"sae_lens_version": source.sae_lens_version, "sha256": digest},
                                         indent=2) + "\n")
    print(f"copied the registry of sae-lens {source.sae_lens_version} to {SHIPPED_REGISTRY} ({digest[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
