"""One dashboard (`dashboards.schemas.FeatureDashboard`) → the normalised, rounded form every writer (feature
JSON, Neuronpedia batch and rows) reads, so each number is rounded once and all outputs agree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from typing_extensions import TypedDict

from mistudio.dashboards.schemas import (
    ActivationExample,
    FeatureDashboard,
    Histogram,
    LogitEntry,
    Statistics,
    TopToken,
)
from mistudio.export.archive.jsonio import (
    NP_DECIMALS,
    render_tokens,
    round_float,
    round_list,
    sig_float,
)


class ScoreDoc(TypedDict):
    """One scorer's score of an explanation as exports write it."""

    scorer: str
    score: float
    model: str | None
    n_examples: int | None
    details: dict[str, Any]
    created_at: str | None


class ExplanationDoc(TypedDict):
    """An explanation as exports write it (`explanations/explanations.json`, the feature JSON, Neuronpedia rows):
    typed in the UI (the feature's label, method `manual`), imported, or generated, with its scores."""

    description: str
    method: str | None
    model: str | None
    score: float | None
    source: str
    prompt_version: str | None
    scores: list[ScoreDoc]
    created_at: str | None


def explanation_doc(item: Mapping[str, Any]) -> ExplanationDoc:
    """The one written form of an explanation (missing keys, as in older exports, get their defaults)."""
    scores: list[ScoreDoc] = [
        {"scorer": str(s["scorer"]), "score": float(s["score"]), "model": s.get("model"),
         "n_examples": s.get("n_examples"), "details": dict(s.get("details") or {}), "created_at": s.get("created_at")}
        for s in item.get("scores") or []]
    return {"description": item["description"], "method": item.get("method"), "model": item.get("model"),
            "score": item.get("score"), "source": item.get("source") or "typed",
            "prompt_version": item.get("prompt_version"), "scores": scores, "created_at": item.get("created_at")}


@dataclass
class PreparedFeature:
    """A feature's dashboard with rendered tokens, 5-decimal values and sorted logits."""

    index: int
    statistics: Statistics
    examples: list[ActivationExample]
    histogram: Histogram
    top_positive: list[LogitEntry]
    top_negative: list[LogitEntry]
    logits_histogram: Histogram
    top_tokens: list[TopToken]
    explanations: list[ExplanationDoc] = field(default_factory=list)
    # SAEDashboard's numbers for Neuronpedia (`export.source.NeuronpediaSource`); None in SAELens-only exports
    neuronpedia: Mapping[str, Any] | None = None

    @property
    def live(self) -> bool:
        """True when the feature fired at least once and has examples."""
        return not self.statistics["dead"] and bool(self.examples)

    @property
    def neuronpedia_live(self) -> bool:
        """True when the feature goes into the Neuronpedia outputs: live, with Neuronpedia examples."""
        return self.live and self.neuronpedia is not None and bool(self.neuronpedia.get("activations"))


def _stats(raw: Statistics) -> Statistics:
    """Every float kept to 6 significant digits (ints, bools and None as they are), key by key."""
    fields: Mapping[str, Any] = raw
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "quantiles":
            out[key] = {q: sig_float(v) for q, v in (value or {}).items()}
        elif isinstance(value, bool) or value is None or isinstance(value, int):
            out[key] = value
        else:
            out[key] = sig_float(value)
    out["dead"] = bool(raw.get("dead", False))
    return cast("Statistics", out)  # the same keys as `raw`, each value rounded


def _rounded_values(raw: list[ActivationExample]) -> list[list[float]]:
    """Every example's values rounded once; one numpy pass when the examples have equal lengths."""
    rows = [ex["values"] for ex in raw]
    if rows and len({len(r) for r in rows}) == 1:
        arr = np.round(np.asarray(rows, dtype=np.float64), NP_DECIMALS)
        if not np.isfinite(arr).all():
            arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        return arr.tolist()
    return [round_list(r) for r in rows]


def _example(ex: ActivationExample, values: list[float], feature_max: float) -> ActivationExample:
    peak = values.index(max(values)) if values else 0
    bin_min = ex.get("bin_min", -1)
    top = bin_min is None or bin_min == -1
    return {
        "tokens": render_tokens(ex["tokens"]),
        "token_ids": ex.get("token_ids") or [],
        "values": values,
        "max_value": values[peak] if values else 0.0,
        "max_token_index": peak,
        "qualifying_token_index": int(ex.get("qualifying_token_index", peak)),
        "bin_min": -1 if top else round_float(bin_min),
        "bin_max": round_float(feature_max) if top else round_float(ex.get("bin_max")),
        "bin_contains": -1 if top else round_float(ex.get("bin_contains")),
        "source": ex["source"].copy(),
    }


def _logits(items: list[LogitEntry]) -> list[LogitEntry]:
    tokens = render_tokens([str(item["token"]) for item in items])
    return [{"token": token, "token_id": item["token_id"], "value": round_float(item["value"]), "rank": rank}
            for rank, (token, item) in enumerate(zip(tokens, items, strict=True))]


def _hist(raw: Histogram | None) -> Histogram:
    out: Histogram = raw.copy() if raw else {"bin_edges": [], "counts": []}
    out["bin_edges"] = round_list(out.get("bin_edges") or [])
    out["counts"] = [int(c) for c in out.get("counts") or []]
    return out


def prepare_feature(dash: FeatureDashboard, *, top_tokens: int, explanations: list[ExplanationDoc] | None = None,
                    neuronpedia: Mapping[str, Any] | None = None) -> PreparedFeature:
    """Normalise one dashboard for writing (the Neuronpedia data, already rounded by its reader, rides along)."""
    stats = _stats(dash["statistics"])
    raw = dash.get("activations") or []
    examples = [_example(ex, values, stats.get("max_activation", 0.0))
                for ex, values in zip(raw, _rounded_values(raw), strict=True)]
    logits = dash["logits"]
    pos = sorted(logits.get("top_positive") or [], key=lambda t: -float(t["value"]))
    neg = sorted(logits.get("top_negative") or [], key=lambda t: float(t["value"]))
    top = (dash.get("top_tokens") or [])[:top_tokens]
    tokens: list[TopToken] = [{"token": token, "token_id": item["token_id"],
               "total_activation": sig_float(item["total_activation"]), "count": int(item["count"]),
               "mean_activation": sig_float(item["mean_activation"]),
               "max_activation": sig_float(item["max_activation"])}
              for token, item in zip(render_tokens([str(item["token"]) for item in top]), top, strict=True)]
    return PreparedFeature(
        index=int(dash["feature_index"]), statistics=stats, examples=examples,
        histogram=_hist(dash.get("histogram")),
        top_positive=_logits(pos), top_negative=_logits(neg),
        logits_histogram=_hist(logits.get("histogram")), top_tokens=tokens,
        explanations=list(explanations or []), neuronpedia=neuronpedia,
    )
