"""Which features an export holds: all, a range, a list, labeled, by label text, frequency or max."""

from __future__ import annotations

import numpy as np

from mistudio.errors import InvalidInputError
from mistudio.export.config import FeatureSelection


def select_features(sel: FeatureSelection, n_features: int, summary: dict[str, np.ndarray],
                    labels: dict[int, tuple[str | None, str | None]]) -> list[int]:
    """Sorted feature indices matching `sel`; `summary` has `frequency`, `max`, `dead` arrays, `labels` maps
    an index to (label, category)."""
    keep = np.ones(n_features, dtype=bool)
    if sel.mode == "range":
        start, stop = sel.start or 0, n_features if sel.stop is None else sel.stop
        if start >= stop or stop > n_features:
            raise InvalidInputError(f"feature range [{start}, {stop}) is empty or beyond the {n_features} features")
        keep[:] = False
        keep[start:stop] = True
    elif sel.mode == "list":
        if not sel.indices:
            raise InvalidInputError("selection mode 'list' needs a non-empty `indices` list")
        bad = [i for i in sel.indices if not 0 <= i < n_features]
        if bad:
            raise InvalidInputError(f"feature indices out of range [0, {n_features}): {bad[:10]}")
        keep[:] = False
        keep[sorted(set(sel.indices))] = True
    elif sel.mode == "labeled":
        keep[:] = False
        keep[[i for i, (label, _) in labels.items() if label and i < n_features]] = True
    elif sel.mode == "label_text":
        if not sel.text:
            raise InvalidInputError("selection mode 'label_text' needs `text`")
        needle = sel.text.lower()
        keep[:] = False
        keep[[i for i, (label, cat) in labels.items()
               if i < n_features and needle in f"{label or ''}\n{cat or ''}".lower()]] = True
    freq = summary["frequency"]
    if sel.min_frequency is not None:
        keep &= freq >= sel.min_frequency
    if sel.max_frequency is not None:
        keep &= freq <= sel.max_frequency
    if sel.min_max_activation is not None:
        keep &= summary["max"] >= sel.min_max_activation
    if not sel.include_dead:
        keep &= ~summary["dead"].astype(bool)
    if sel.mode in ("frequency", "max_activation") and sel.min_frequency is None and sel.max_frequency is None \
            and sel.min_max_activation is None:
        raise InvalidInputError(f"selection mode {sel.mode!r} needs min/max_frequency or min_max_activation")
    indices = np.flatnonzero(keep).tolist()
    if not indices:
        raise InvalidInputError("the feature selection matches no feature; widen the filters")
    return indices
