"""What an explainer is shown about a feature: its top and quantile-band examples and its top logits.

Read from the feature store through `dashboards.reader.feature_dashboard` (the same examples and logit-lens
tokens the feature's dashboard shows). Token strings are cleaned as Neuronpedia's `batch-autointerp.py` cleans them
before prompting (`HTML_ANOMALY_AND_SPECIAL_CHARS_REPLACEMENTS`: mis-decoded punctuation, byte-level BPE markers,
BOS/EOS tokens replaced by a space), and examples with the same text are shown once, as there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from mistudio.dashboards.reader import feature_dashboard
from mistudio.dashboards.schemas import ActivationExample
from mistudio.store.feature_store import FeatureStore

TOKEN_REPLACEMENTS: dict[str, str] = {
    "âĢĶ": "—",
    "âĢĵ": "–",
    "âĢľ": '"',
    "âĢĿ": '"',
    "âĢĺ": "'",
    "âĢĻ": "'",
    "âĢĭ": " ",
    "Ġ": " ",
    "Ċ": "\n",
    "<0x0A>": "\n",
    "ĉ": "\t",
    "▁": " ",
    "<|endoftext|>": " ",
    "<bos>": " ",
    "<|begin_of_text|>": " ",
    "<|end_of_text|>": " ",
}
"""Neuronpedia's replacements, applied in this order to every token and logit string shown to an explainer."""


@lru_cache(maxsize=1 << 17)
def clean_token(text: str) -> str:
    """A token string as Neuronpedia's auto-interp shows it (see `TOKEN_REPLACEMENTS`)."""
    for old, new in TOKEN_REPLACEMENTS.items():
        text = text.replace(old, new)
    return text


@dataclass(frozen=True)
class Example:
    """One text window: its (cleaned) tokens and the feature's activation on each."""

    tokens: list[str]
    values: list[float]
    window_index: int
    bin_min: float = -1.0
    bin_max: float = -1.0

    @property
    def max_value(self) -> float:
        return max(self.values) if self.values else 0.0

    @property
    def max_index(self) -> int:
        """The first position holding the maximum (`list.index(max(...))`, as the explainers pick it)."""
        return self.values.index(max(self.values)) if self.values else 0

    @property
    def text(self) -> str:
        return "".join(self.tokens)


@dataclass(frozen=True)
class FeatureEvidence:
    """A feature's examples (top ones best first; quantile-band ones highest band first) and logit-lens tokens."""

    feature_index: int
    top: list[Example]
    quantiles: list[Example]
    top_logits: list[str]
    top_logit_values: list[float]
    bottom_logits: list[str] = field(default_factory=list)
    max_activation: float = 0.0
    activation_frequency: float = 0.0

    @property
    def dead(self) -> bool:
        return not self.top or self.max_activation <= 0


def _example(raw: ActivationExample) -> Example:
    return Example(tokens=[clean_token(t) for t in raw["tokens"]], values=[float(v) for v in raw["values"]],
                   window_index=int(raw["source"]["window_index"]), bin_min=float(raw["bin_min"]),
                   bin_max=float(raw["bin_max"]))


def _unique(examples: list[Example]) -> list[Example]:
    seen: set[str] = set()
    out = []
    for ex in examples:
        if ex.text not in seen:
            seen.add(ex.text)
            out.append(ex)
    return out


def feature_evidence(store: FeatureStore, index: int, *, n_top: int = 20, n_logits: int = 10,
                     context: tuple[int, int] | None = None, quantiles: bool = True) -> FeatureEvidence:
    """Feature `index`'s evidence: at most `n_top` top examples (distinct texts, highest maximum first), every
    stored quantile-band example (none unless `quantiles`), and the `n_logits` top/bottom logit-lens tokens.
    `context` (tokens before, after the maximum) trims each window; None keeps the whole stored window.

    Raises:
        NotFoundError: no such feature, or the store lacks a part the dashboard needs.
    """
    dashboard = feature_dashboard(store, index, context=context, logit_k=n_logits, include_intervals=quantiles)
    top: list[Example] = []
    bands: list[Example] = []
    for raw in dashboard["activations"]:
        (top if raw["bin_min"] < 0 else bands).append(_example(raw))
    top = sorted(_unique(top), key=lambda ex: -ex.max_value)[:n_top]
    logits = dashboard["logits"]
    stats = dashboard["statistics"]
    return FeatureEvidence(
        feature_index=index,
        top=top,
        quantiles=_unique(bands),
        top_logits=[clean_token(e["token"]) for e in logits["top_positive"]],
        top_logit_values=[float(e["value"]) for e in logits["top_positive"]],
        bottom_logits=[clean_token(e["token"]) for e in logits["top_negative"]],
        max_activation=float(stats["max_activation"]),
        activation_frequency=float(stats["activation_frequency"]),
    )
