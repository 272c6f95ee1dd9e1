"""Convert an SAE from any readable format to SAELens 6 or miStudio's native layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mistudio.errors import InvalidInputError
from mistudio.saes.formats import detect_format, read_detected, read_sparsity, write_native, write_saelens
from mistudio.saes.formats.native import read_training_metadata

TARGETS = ("saelens", "mistudio")


def convert_sae(
    src_path: str | Path,
    out_dir: str | Path,
    to: str = "saelens",
    hints: dict[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Read the SAE at `src_path` and write it to `out_dir` as `to` ("saelens" or "mistudio"); returns `out_dir`.

    SAELens sparsity files and miStudio training metadata are carried over when the source has them.
    """
    if to not in TARGETS:
        raise InvalidInputError(f"cannot convert to {to!r}; choose one of {', '.join(TARGETS)}")
    detected = detect_format(src_path, hints)
    sae = read_detected(detected)
    if to == "saelens":
        sparsity = read_sparsity(detected.root) if detected.format == "saelens" else None
        return write_saelens(sae, out_dir, sparsity, overwrite=overwrite)
    training = read_training_metadata(detected.root) if detected.format == "mistudio" else None
    return write_native(sae, out_dir, training, overwrite=overwrite)
