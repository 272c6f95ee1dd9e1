"""The examples a score rests on, drawn deterministically (a seed) from the extraction that the explanation came from.

Activating examples are held out across the store's quantile bands: the dashboard's interval examples (equal-width
bands of [0, max], highest first) and the top examples, one example per window, the windows the explainer saw
(`seen_windows`) left out where enough others exist, taken round-robin over the bands so every band is
represented. Non-activating examples come from the same text: the extraction's own windows, those holding none of
the feature's stored examples and where the live SAE (`inference.sae_session.LiveSAE`, prepared exactly as the
extraction prepared it) reads exactly 0 for the feature at every token, special tokens masked as the store masks
them. Tokens are shown cleaned as the explainer shows them (`evidence.clean_token`). Each example is a
`context`-token span: around the maximum as delphi centres it for an activating example,
at a random place for a non-activating one.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mistudio.autointerp.evidence import clean_token
from mistudio.autointerp.scorers.examples import NON_ACTIVATING, ScoringExample, centred_span
from mistudio.dashboards.reader import feature_dashboard
from mistudio.dashboards.schemas import ActivationExample
from mistudio.inference.sae_session import LiveSAE
from mistudio.store.feature_store import FeatureStore

DEFAULT_CONTEXT = 32
"""delphi's `example_ctx_len`."""
POOL_PER_EXAMPLE = 4
"""Windows checked live per non-activating example wanted (at least `MIN_POOL`; all when the extraction has fewer)."""
MIN_POOL = 64
WINDOW_BATCH = 32


def feature_rng(seed: int, feature_index: int, purpose: str) -> random.Random:
    """The random stream of one feature and purpose: the same seed gives the same examples whatever else is
    scored."""
    return random.Random(f"{seed}:{feature_index}:{purpose}")


@dataclass
class _Band:
    quantile: int
    examples: list[ActivationExample] = field(default_factory=list)


def _bands(store: FeatureStore, index: int) -> list[_Band]:
    """The feature's stored examples by band: the top group first (quantile 0), then the interval bands from the
    highest down; one example per window."""
    dashboard = feature_dashboard(store, index)
    top = _Band(0)
    intervals: dict[tuple[float, float], _Band] = {}
    seen: set[int] = set()
    for example in dashboard["activations"]:
        window = int(example["source"]["window_index"])
        if window in seen or not example["max_value"] > 0:
            continue
        seen.add(window)
        if example["bin_min"] == -1:
            top.examples.append(example)
        else:
            key = (float(example["bin_min"]), float(example["bin_max"]))
            intervals.setdefault(key, _Band(0)).examples.append(example)
    bands = [top] if top.examples else []
    for q, key in enumerate(sorted(intervals, reverse=True), start=1):
        intervals[key].quantile = q
        bands.append(intervals[key])
    return bands


def stored_windows(store: FeatureStore, index: int) -> set[int]:
    """Every window holding one of the feature's stored examples (top and interval)."""
    return {int(e["source"]["window_index"]) for e in feature_dashboard(store, index)["activations"]}


def _crop(example: ActivationExample, quantile: int, context: int) -> ScoringExample:
    start, stop = centred_span(len(example["tokens"]), int(example["max_token_index"]), context)
    return ScoringExample(tokens=[clean_token(t) for t in example["tokens"][start:stop]], values=list(example["values"][start:stop]),
                          activating=True, quantile=quantile, window_index=int(example["source"]["window_index"]),
                          start=int(example["source"]["start"]) + start,
                          token_ids=list(example["token_ids"][start:stop]))


def activating_examples(store: FeatureStore, index: int, n: int, *, seen_windows: Iterable[int] = (),
                        context: int = DEFAULT_CONTEXT, seed: int = 0) -> tuple[list[ScoringExample], int]:
    """Up to `n` activating examples of feature `index`, round-robin over its bands (seeded order within each),
    windows in `seen_windows` only when the others run out. Returns the examples and how many were seen ones.

    Raises:
        NotFoundError: no such feature, or the store lacks a part the dashboard needs.
    """
    rng = feature_rng(seed, index, "activating")
    seen = set(seen_windows)
    bands = _bands(store, index)
    fresh: list[list[tuple[int, ActivationExample]]] = []
    reused: list[tuple[int, ActivationExample]] = []
    for band in bands:
        order = list(band.examples)
        rng.shuffle(order)
        fresh.append([(band.quantile, e) for e in order if int(e["source"]["window_index"]) not in seen])
        reused += [(band.quantile, e) for e in order if int(e["source"]["window_index"]) in seen]
    chosen: list[tuple[int, ActivationExample]] = []
    queues = sorted(fresh, key=lambda q: q[0][0] == 0 if q else True)  # the interval bands first, the top group last
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    n_reused = 0
    while len(chosen) < n and reused:
        chosen.append(reused.pop(0))
        n_reused += 1
    return [_crop(e, q, context) for q, e in chosen], n_reused


class ZeroWindows:
    """Which extraction windows the live SAE reads as exactly 0 for given features: a seeded pool of the
    store's windows, encoded once for every feature of a scoring run."""

    def __init__(self, live: LiveSAE, store: FeatureStore, features: Sequence[int], *, n_wanted: int = 25,
                 seed: int = 0) -> None:
        self.store = store
        n_windows = int(store.windows()["tokens"].shape[0])
        order = list(range(n_windows))
        random.Random(f"{seed}:non-activating-pool").shuffle(order)
        self.windows = sorted(order[:max(MIN_POOL, POOL_PER_EXAMPLE * n_wanted)])
        self.features = sorted({int(f) for f in features})
        self._column = {f: i for i, f in enumerate(self.features)}
        self.maxima = self._maxima(live)

    def _maxima(self, live: LiveSAE) -> np.ndarray:
        """[pool windows, features] largest activation over each window (special tokens read 0)."""
        from mistudio.lm.hooks import capture_many
        from mistudio.lm.tokens import special_token_ids

        out = np.zeros((len(self.windows), len(self.features)), dtype=np.float32)
        if not self.windows or not self.features:
            return out
        tokens = self.store.windows()["tokens"]
        wanted = torch.tensor(self.features, dtype=torch.int64)
        with live.lease() as loaded, torch.no_grad():
            special_ids = torch.tensor(special_token_ids(loaded.tokenizer), dtype=torch.int64)
            hook = live.inputs(loaded).hook
            for lo in range(0, len(self.windows), WINDOW_BATCH):
                rows = self.windows[lo:lo + WINDOW_BATCH]
                ids = tokens[rows].to(torch.int64)
                special = torch.isin(ids, special_ids).to(live.sae.device)
                x = live.sae_input(capture_many(loaded, ids, None, [hook])[hook], loaded)
                for start, chunk in live.sae.encode_chunks(x, live.feature_chunk):
                    stop = start + chunk.shape[-1]
                    inside = (wanted >= start) & (wanted < stop)
                    if not bool(inside.any()):
                        continue
                    cols = (wanted[inside] - start).to(chunk.device)
                    acts = chunk.float().index_select(-1, cols).masked_fill(special.unsqueeze(-1), 0.0)
                    out[lo:lo + len(rows), inside.numpy()] = acts.amax(dim=1).cpu().numpy()
        return out

    def zero_windows(self, feature: int) -> list[int]:
        """The pool's windows where `feature` reads 0 at every token."""
        column = self.maxima[:, self._column[int(feature)]]
        return [w for w, m in zip(self.windows, column.tolist(), strict=True) if m == 0.0]


def non_activating_examples(store: FeatureStore, index: int, n: int, zero: ZeroWindows, *,
                            context: int = DEFAULT_CONTEXT, seed: int = 0) -> list[ScoringExample]:
    """Up to `n` non-activating examples of feature `index`: random `context`-token spans of windows verified 0
    by `zero` that hold none of the feature's stored examples (seeded)."""
    rng = feature_rng(seed, index, "non-activating")
    excluded = stored_windows(store, index)
    candidates = [w for w in zero.zero_windows(index) if w not in excluded]
    rng.shuffle(candidates)
    tokens = store.windows()["tokens"]
    vocab = store.vocab
    out = []
    for w in candidates[:n]:
        ids = tokens[w].tolist()
        start = rng.randrange(0, max(1, len(ids) - context + 1))
        span = ids[start:start + context]
        out.append(ScoringExample(tokens=[clean_token(vocab[i]) if i < len(vocab) else "" for i in span], values=[0.0] * len(span),
                                  activating=False, quantile=NON_ACTIVATING, window_index=w, start=start,
                                  token_ids=[int(i) for i in span]))
    return out


__all__ = ["DEFAULT_CONTEXT", "ZeroWindows", "activating_examples", "feature_rng", "non_activating_examples",
           "stored_windows"]
