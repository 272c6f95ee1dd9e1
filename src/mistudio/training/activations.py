"""Training activations: the engine's own capture streamed through a shuffling buffer whose state is checkpointed.

`ActivationStream` reads token windows (`datasets.windows.tokenize_windows`, SAELens's concat/BOS rules) in a
fixed order, runs the model once per batch of windows up to the last hook any SAE needs (`lm.hooks.capture_many`:
TransformerLens names or HF module paths, several hooks from one forward), prepares each hook's activations as the
extraction does (`extraction.sae_inputs.prepare_input`: one head of a per-head hook, heads flattened otherwise),
drops the positions of special tokens (BOS, EOS, pad: SAELens's `exclude_special_tokens=True`) and pushes the rest
into a `MixingBuffer`: SAELens's `mixing_buffer` (fill to capacity, permute, keep `mix_fraction` of the capacity for
mixing, serve the rest in batches), with every hook's rows permuted together so a batch's rows are the same
positions at every hook. Each row carries its position (`window * context_size + offset`), so no position is
served twice.

The stream's state (the window cursor, the buffer's rows, its generator) is a flat dict of tensors: a run resumed
from it serves exactly the batches an uninterrupted run would have served. Activations are scaled per hook by
SAELens's `ActivationScaler` factor for `expected_average_only_in`, `sqrt(d_in) / E‖x‖`, estimated on the first
training windows (special tokens excluded, as the positions trained on) before training starts; the run applies
each SAE's factor to its input (and a transcoder's target, so the factor folds into the saved weights exactly).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from mistudio.datasets.windows import Windows
from mistudio.errors import InvalidInputError
from mistudio.extraction.sae_inputs import prepare_input

if TYPE_CHECKING:
    from mistudio.lm.loading import LoadedModel

POSITION = "__position__"  # the buffer column holding each row's position
_STORED, _READY = "stored/", "ready/"


class Sharding(Protocol):
    """What the stream needs of a `training.distributed.DistributedContext`: this rank's share of the windows."""

    rank: int

    def shard(self, n: int) -> range:
        """The indices in `range(n)` this rank reads."""
        ...


@dataclass(frozen=True)
class HookRead:
    """One hook the stream captures: its name (TransformerLens name or HF module path) and, for one head of a
    per-head hook, the head index."""

    name: str
    head_index: int | None = None


def subset_windows(windows: Windows, idx: torch.Tensor) -> Windows:
    """The windows `idx` of `windows`, with their provenance."""
    return Windows(tokens=windows.tokens[idx], document=windows.document[idx], offset=windows.offset[idx],
                   dataset=windows.dataset, prepend_bos=windows.prepend_bos, bos_token_id=windows.bos_token_id,
                   separator_token_id=windows.separator_token_id, concat_sequences=windows.concat_sequences)


def split_held_out(windows: Windows, n_held_out: int) -> tuple[Windows, Windows]:
    """(training windows, held-out evaluation windows): the first `n_held_out` windows (already in a seeded random
    order) are kept apart for evaluation and never trained on.

    Raises:
        InvalidInputError: too few windows to keep `n_held_out` apart and still train.
    """
    if len(windows) <= n_held_out:
        raise InvalidInputError(f"the dataset gave {len(windows)} windows, too few to keep {n_held_out} apart for "
                                "evaluation; use a larger dataset, a smaller --context-size or fewer eval windows")
    order = torch.arange(len(windows))
    return subset_windows(windows, order[n_held_out:]), subset_windows(windows, order[:n_held_out])


def windows_needed(n_tokens: int, context_size: int, exclude_special_tokens: bool) -> int:
    """Windows to tokenise for `n_tokens` training positions: one position per window (BOS) and about 10% more
    (separators, the buffer's last partial batch) when special tokens are left out."""
    per_window = context_size - 1 if exclude_special_tokens else context_size
    slack = 1.1 if exclude_special_tokens else 1.0
    return math.ceil(n_tokens * slack / per_window) + 1


def epoch_order(n: int, epochs: int, seed: int, shard: list[int] | None = None) -> torch.Tensor:
    """The order the stream reads windows in, as indices `epoch * n + window`: the first pass in the windows' own
    (already shuffled) order, each further pass a seeded permutation of it; `shard` restricts it to those windows."""
    base = torch.tensor(shard if shard is not None else range(n), dtype=torch.int64)
    passes = [base]
    for epoch in range(1, epochs):
        generator = torch.Generator().manual_seed(seed * 1_000_033 + epoch)
        passes.append(base[torch.randperm(len(base), generator=generator)] + epoch * n)
    return torch.cat(passes)


def _rows(columns: dict[str, torch.Tensor] | None) -> int:
    return 0 if not columns else int(next(iter(columns.values())).shape[0])


class MixingBuffer:
    """SAELens's mixing buffer over named columns (one per hook, plus positions) that are permuted together:
    rows are stored until `capacity`, then permuted and all but `mix_fraction × capacity` move to the serving
    queue, which hands out `batch` rows at a time. At the end (`final`), every stored row is served; a last
    partial batch is dropped. Its state (`state_dict`) resumes it exactly.

    Raises:
        InvalidInputError: `capacity < batch` or `mix_fraction` outside [0, 1).
    """

    def __init__(self, capacity: int, batch: int, *, mix_fraction: float = 0.5, seed: int = 0) -> None:
        if capacity < batch:
            raise InvalidInputError(f"the shuffling buffer ({capacity} positions) must hold at least one batch "
                                    f"({batch}); give more buffer windows or fewer batch tokens")
        if not 0 <= mix_fraction < 1:
            raise InvalidInputError(f"mix_fraction must be in [0, 1), not {mix_fraction}")
        self.capacity, self.batch, self.mix_fraction = capacity, batch, mix_fraction
        self.generator = torch.Generator().manual_seed(seed)
        self.stored: dict[str, torch.Tensor] | None = None
        self.ready: dict[str, torch.Tensor] | None = None

    @property
    def stored_rows(self) -> int:
        """Rows waiting to be shuffled out."""
        return _rows(self.stored)

    @property
    def ready_rows(self) -> int:
        """Shuffled rows waiting to be served."""
        return _rows(self.ready)

    def push(self, columns: dict[str, torch.Tensor]) -> None:
        """Add rows (every column the same number of rows)."""
        if self.stored is None:
            self.stored = dict(columns)
        else:
            self.stored = {k: torch.cat([v, columns[k]]) for k, v in self.stored.items()}

    def shuffle_out(self, *, final: bool) -> bool:
        """Permute the stored rows and move all but the kept share (none when `final`) to the serving queue;
        False when nothing moved."""
        n = self.stored_rows
        keep = 0 if final else int(self.capacity * self.mix_fraction)
        if self.stored is None or n <= keep:
            return False
        perm = torch.randperm(n, generator=self.generator)
        shuffled = {k: v[perm.to(v.device)] for k, v in self.stored.items()}
        served = {k: v[: n - keep] for k, v in shuffled.items()}
        self.stored = {k: v[n - keep:] for k, v in shuffled.items()}
        self.ready = served if self.ready is None else {k: torch.cat([v, served[k]]) for k, v in self.ready.items()}
        return True

    def take(self) -> dict[str, torch.Tensor]:
        """The next `batch` rows of the serving queue (the caller checked `ready_rows >= batch`)."""
        assert self.ready is not None
        out = {k: v[: self.batch] for k, v in self.ready.items()}
        self.ready = {k: v[self.batch:] for k, v in self.ready.items()}
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Rows and generator as a flat dict of tensors."""
        state = {"generator": self.generator.get_state()}
        for prefix, columns in ((_STORED, self.stored), (_READY, self.ready)):
            for k, v in (columns or {}).items():
                state[prefix + k] = v.contiguous()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        """Restore `state_dict()` (rows onto `device`, positions stay int64)."""
        self.generator.set_state(state["generator"].to(torch.uint8).cpu())
        for prefix, attr in ((_STORED, "stored"), (_READY, "ready")):
            columns = {k[len(prefix):]: v.to(device) for k, v in state.items() if k.startswith(prefix)}
            setattr(self, attr, columns or None)


class ActivationStream:
    """Batches of `batch_tokens` training positions, shuffled, at every hook of `hooks` (see the module doc).

    `windows` are the training windows (held-out ones already split off); with `dist`, this rank reads only its
    shard of them. `buffer_windows` windows' worth of positions fill the buffer; `forward_batch_windows` windows go
    through the model per forward. With `epochs` > 1 the windows are read again, each further pass in a new seeded
    order (`epoch_order`); a position is then served once per epoch.

    Raises:
        InvalidInputError: no hooks, epochs below 1, or the buffer cannot hold a batch.
    """

    def __init__(self, loaded: LoadedModel, windows: Windows, hooks: Sequence[HookRead], *, batch_tokens: int,
                 buffer_windows: int = 64, forward_batch_windows: int = 16, mix_fraction: float = 0.5,
                 seed: int = 0, exclude_special_tokens: bool = True, device: torch.device | str | None = None,
                 dist: Sharding | None = None, epochs: int = 1) -> None:
        from mistudio.lm.tokens import special_token_ids

        if not hooks:
            raise InvalidInputError("an activation stream needs at least one hook")
        self.loaded, self.windows, self.hooks = loaded, windows, list({h.name: h for h in hooks}.values())
        self.batch_tokens, self.forward_batch_windows = batch_tokens, max(1, forward_batch_windows)
        self.device = torch.device(device) if device is not None else loaded.device
        self.context_size = windows.context_size
        special = special_token_ids(loaded.tokenizer) if exclude_special_tokens else []
        self.special = torch.tensor(special, dtype=torch.int64)
        rank_seed = seed + 1_000_003 * (dist.rank if dist is not None else 0)
        if epochs < 1:
            raise InvalidInputError(f"epochs must be at least 1 (got {epochs})")
        self.order = epoch_order(len(windows), epochs, rank_seed,
                                 list(dist.shard(len(windows))) if dist is not None else None)
        self.buffer = MixingBuffer(buffer_windows * self.context_size, batch_tokens, mix_fraction=mix_fraction,
                                   seed=rank_seed)
        self.cursor = 0  # windows of `order` read so far
        self.tokens_served = 0
        self.norm_factors: dict[str, float] = {}

    @property
    def exhausted(self) -> bool:
        """Whether every window has been read into the buffer."""
        return self.cursor >= len(self.order)

    def _capture(self, window_idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows of windows `window_idx` (special positions dropped): one column per hook `[rows, d]` and their
        positions."""
        from mistudio.lm.hooks import capture_many

        tokens = self.windows.tokens[window_idx % len(self.windows)]  # an index of a later epoch reads it again
        captured = capture_many(self.loaded, tokens, None, [h.name for h in self.hooks])
        keep = ~torch.isin(tokens, self.special).reshape(-1) if self.special.numel() else None
        columns: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for hook in self.hooks:
                acts = prepare_input(captured[hook.name], None, hook.head_index, hook.name, self.device)
                acts = acts.reshape(-1, acts.shape[-1])
                columns[hook.name] = acts[keep.to(acts.device)] if keep is not None else acts.clone()
            pos = (window_idx[:, None] * self.context_size + torch.arange(self.context_size)).reshape(-1)
            columns[POSITION] = (pos[keep] if keep is not None else pos).to(self.device)
        return columns

    def _read(self) -> None:
        idx = self.order[self.cursor:self.cursor + self.forward_batch_windows]
        self.cursor += len(idx)
        self.buffer.push(self._capture(idx))

    @torch.no_grad()
    def estimate_norm_factors(self, n_windows: int) -> dict[str, float]:
        """Set and return each hook's `sqrt(d_in) / E‖x‖` over the training positions of the first `n_windows`
        windows of this stream's order (read without consuming them).

        Raises:
            InvalidInputError: a hook's activations are all zero.
        """
        totals = {h.name: 0.0 for h in self.hooks}
        widths: dict[str, int] = {}
        count = 0
        n = min(n_windows, len(self.order))
        for lo in range(0, n, self.forward_batch_windows):
            columns = self._capture(self.order[lo:min(lo + self.forward_batch_windows, n)])
            count += int(columns[POSITION].shape[0])
            for name in totals:
                totals[name] += float(columns[name].float().norm(dim=-1).sum())
                widths[name] = int(columns[name].shape[-1])
        factors = {}
        for hook in self.hooks:
            mean_norm = totals[hook.name] / max(count, 1)
            if not mean_norm > 0:
                raise InvalidInputError(f"the activations at {hook.name} are all zero; they cannot be normalised")
            factors[hook.name] = math.sqrt(widths[hook.name]) / mean_norm
        self.norm_factors = factors
        return factors

    def next_batch(self) -> dict[str, torch.Tensor] | None:
        """The next batch: `{hook: [batch_tokens, d] float32, POSITION: [batch_tokens] int64}` (raw activations:
        the caller scales each SAE's by its `norm_factors`), or None when the windows are used up (a last partial
        batch is never served)."""
        buffer = self.buffer
        while buffer.ready_rows < self.batch_tokens:
            if buffer.stored_rows >= buffer.capacity or self.exhausted:
                if not buffer.shuffle_out(final=self.exhausted) and self.exhausted:
                    return None
            else:
                self._read()
        batch = buffer.take()
        self.tokens_served += self.batch_tokens
        return {name: (column if name == POSITION else column.float()) for name, column in batch.items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The window cursor, tokens served and the buffer, as a flat dict of tensors."""
        return {"cursor": torch.tensor(self.cursor), "tokens_served": torch.tensor(self.tokens_served),
                **{f"buffer/{k}": v for k, v in self.buffer.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`."""
        self.cursor = int(state["cursor"])
        self.tokens_served = int(state["tokens_served"])
        self.buffer.load_state_dict({k[len("buffer/"):]: v for k, v in state.items() if k.startswith("buffer/")},
                                    self.device)
