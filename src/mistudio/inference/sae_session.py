"""A catalogued SAE prepared for live use exactly as its extraction prepares it, and its activations on a text.

`open_sae(studio, sae_id)` loads the SAE onto the model server's device and applies the conventions of the SAE's
latest completed extraction (of the requested model, when one is named): the hook it reads (`hf_hook_name`, else
`hook_name`; one head with `hook_head_index`), the activation transform of its `model_from_pretrained_kwargs`,
the `expected_average_only_in` factor that extraction folded in, its BOS convention, the model's dtype and the
feature chunk of the encoder. The functions that do this are the extraction's own (`extraction.sae_inputs`,
`datasets.windows.text_tokens`), so a live activation equals the stored value for the same tokens; positions
holding a special token read 0, as in the stored examples.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from sqlalchemy import select

from mistudio.catalog.service import get_record, load_sae_for
from mistudio.datasets.windows import text_tokens
from mistudio.db.models import Extraction as ExtractionRecord
from mistudio.errors import ConflictError, InvalidInputError
from mistudio.extraction.sae_inputs import (
    InputTransforms,
    input_transforms,
    known_norm_factor,
    prepare_input,
    sae_hooks,
)
from mistudio.inference.model_server import ModelServer, model_server, module_bytes
from mistudio.inference.schemas import FeatureTrace, FeatureValue, LiveActivations, TopFeature
from mistudio.saes.model import SAE
from mistudio.studio import Studio

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from mistudio.lm.loading import LoadedModel

DEFAULT_MAX_TOKENS = 1024  # when neither the SAE nor its extraction names a context size
MAX_TOP_K = 100
MAX_FEATURES = 256
CHARS_PER_TOKEN_BOUND = 64  # a text longer than this × the token limit is refused before tokenising
_DEFAULT_FEATURE_CHUNK = 4096

_VOCAB: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()
_VOCAB_LOCK = threading.Lock()


def display_tokens(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The tokenizer's display strings (`lm.tokens.vocab_strings`, as the stored examples show them), cached."""
    from mistudio.lm.tokens import vocab_strings

    with _VOCAB_LOCK:
        strings = _VOCAB.get(tokenizer)
        if strings is None:
            strings = vocab_strings(tokenizer)
            _VOCAB[tokenizer] = strings
        return strings


@dataclass(frozen=True)
class _ExtractionConventions:
    extraction_id: str | None = None
    model: str | None = None
    dtype: str | None = None
    normalization: dict[str, Any] = field(default_factory=dict)
    prepend_bos: bool | None = None
    context_size: int | None = None
    feature_chunk: int | None = None


def _conventions(studio: Studio, sae_id: str, prefer: Callable[[str], bool] | None) -> _ExtractionConventions:
    """The conventions of the SAE's latest completed extraction (the latest whose model `prefer` accepts, when
    there is one), read from its manifest."""
    from mistudio.store.feature_store import open_store

    with studio.sessions() as s:
        rows = list(s.scalars(select(ExtractionRecord)
                              .where(ExtractionRecord.sae_id == sae_id, ExtractionRecord.status == "completed")
                              .order_by(ExtractionRecord.finished_at.desc())))
        found = [(r.id, r.model_name, dict(r.settings or {}), r.store_path) for r in rows if r.store_path]
    if not found:
        return _ExtractionConventions()
    chosen = found[0]
    if prefer is not None:
        chosen = next((f for f in found if f[1] and prefer(f[1])), chosen)
    extraction_id, model, settings, store_path = chosen
    manifest = open_store(studio.settings.absolute(store_path)).manifest
    windows = manifest.get("windows") or {}
    engine_settings = manifest.get("settings") or {}
    return _ExtractionConventions(
        extraction_id=extraction_id, model=model, dtype=settings.get("dtype"),
        normalization=dict(manifest.get("normalization") or {}),
        prepend_bos=windows.get("prepend_bos", manifest.get("prepend_bos")),
        context_size=manifest.get("context_size"), feature_chunk=engine_settings.get("feature_chunk"))


@dataclass(eq=False)
class LiveSAE:
    """An SAE ready to encode live activations of its model, prepared as its extraction prepared it.

    `sae` has the extraction's `expected_average_only_in` factor folded in (so `sae.W_dec` is in the units of
    the raw hook activations); `hook` is what the engine captures (`hf_hook_name` or `hook_name`).
    """

    server: ModelServer
    sae_id: str
    sae: SAE
    model_ref: str
    device: str
    dtype: str
    hook: str
    prepend_bos: bool
    max_tokens: int
    feature_chunk: int
    extraction_id: str | None
    normalization: dict[str, Any]
    _inputs: weakref.WeakKeyDictionary[Any, InputTransforms] = field(default_factory=weakref.WeakKeyDictionary)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def hook_name(self) -> str | None:
        """The TransformerLens hook name of the SAE's config."""
        return self.sae.cfg.hook_name

    @property
    def head_index(self) -> int | None:
        """The attention head an SAE of one head reads."""
        return self.sae.cfg.hook_head_index

    @property
    def d_sae(self) -> int:
        """Number of features."""
        return self.sae.cfg.d_sae

    @contextmanager
    def lease(self) -> Iterator[LoadedModel]:
        """The SAE's model from the studio's model server, held for the `with` block."""
        with self.server.lease(self.model_ref, device=self.device, dtype=self.dtype) as loaded:
            yield loaded

    def inputs(self, loaded: LoadedModel) -> InputTransforms:
        """The hooks and activation transforms on `loaded` (built once per loaded model).

        Raises:
            InvalidInputError: a hook does not exist in the model or its processing is not reproducible.
        """
        with self._lock:
            found = self._inputs.get(loaded.model)
            if found is None:
                found = input_transforms(loaded, self.sae, sae_id=self.sae_id)
                self._inputs[loaded.model] = found
            return found

    def sae_input(self, acts: torch.Tensor, loaded: LoadedModel) -> torch.Tensor:
        """Activations captured at `hook` (as `lm.hooks.capture_many` returns them) → the SAE's input."""
        inputs = self.inputs(loaded)
        return prepare_input(acts, inputs.transform, inputs.head_index, inputs.hook, self.sae.device)

    def encode(self, acts: torch.Tensor, loaded: LoadedModel | None = None) -> torch.Tensor:
        """Feature activations `[..., d_sae]` of activations captured at `hook` (no special-token masking).
        Without `loaded`, the SAE's model is leased to build the transform."""
        if loaded is None:
            with self.lease() as held:
                return self.encode(acts, held)
        with torch.no_grad():
            return self.sae.encode(self.sae_input(acts, loaded))

    def tokens(self, text: str, tokenizer: PreTrainedTokenizerBase) -> list[int]:
        """The token ids of `text` as an extraction window holds them (BOS first when the SAE prepends it)."""
        return text_tokens(text, tokenizer, prepend_bos=self.prepend_bos)

    # ----- validation ---------------------------------------------------------------------------------------
    def check_request(self, text: str | None, features: Sequence[int] | None, top_k: int) -> None:
        """Refuse a bad request before any model work.

        Raises:
            InvalidInputError: empty or far too long text, unknown feature indices, too many features, or
                top_k outside 1..100.
        """
        if text is not None:
            if not text:
                raise InvalidInputError("the text is empty; type some text to run the SAE on")
            if len(text) > self.max_tokens * CHARS_PER_TOKEN_BOUND:
                raise InvalidInputError(f"the text has {len(text):,} characters, far more than the "
                                        f"{self.max_tokens} tokens SAE {self.sae_id} reads; shorten it")
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidInputError(f"top_k must be between 1 and {MAX_TOP_K} (got {top_k})")
        if features is not None:
            if len(features) > MAX_FEATURES:
                raise InvalidInputError(f"at most {MAX_FEATURES} features per request (got {len(features)})")
            bad = sorted({int(f) for f in features if not 0 <= int(f) < self.d_sae})
            if bad:
                raise InvalidInputError(
                    f"unknown feature index {', '.join(map(str, bad[:10]))}: SAE {self.sae_id} has features "
                    f"0..{self.d_sae - 1}")

    def _check_length(self, n_tokens: int) -> None:
        if n_tokens > self.max_tokens:
            raise InvalidInputError(f"the text is {n_tokens} tokens long; SAE {self.sae_id} reads at most "
                                    f"{self.max_tokens} (its context size); shorten it")
        if n_tokens == 0:
            raise InvalidInputError("the text has no tokens; type some text to run the SAE on")

    # ----- activations --------------------------------------------------------------------------------------
    def activations(self, text: str, features: Sequence[int] | None = None, top_k: int = 10) -> LiveActivations:
        """The SAE's activations on `text`: the requested features at every token, the top_k active features
        per token and overall.

        Raises:
            InvalidInputError: see `check_request`; the text is longer than the SAE's context size.
        """
        self.check_request(text, features, top_k)
        with self.lease() as loaded:
            ids = self.tokens(text, loaded.tokenizer)
            return self._activations(loaded, ids, features, top_k)

    def activations_for_ids(self, token_ids: Sequence[int], features: Sequence[int] | None = None,
                            top_k: int = 10) -> LiveActivations:
        """As `activations`, for token ids given as they are (no BOS added).

        Raises:
            InvalidInputError: see `check_request`; too many tokens, or an id outside the vocabulary.
        """
        self.check_request(None, features, top_k)
        with self.lease() as loaded:
            vocab = len(loaded.tokenizer)
            bad = [int(t) for t in token_ids if not 0 <= int(t) < max(vocab, loaded.vocab_size)]
            if bad:
                raise InvalidInputError(f"token id {bad[0]} is outside the vocabulary of {loaded.name}")
            return self._activations(loaded, [int(t) for t in token_ids], features, top_k)

    def _activations(self, loaded: LoadedModel, ids: list[int], features: Sequence[int] | None,
                     top_k: int) -> LiveActivations:
        from mistudio.lm.hooks import capture_many
        from mistudio.lm.tokens import special_token_ids

        self._check_length(len(ids))
        inputs = self.inputs(loaded)
        tokens = torch.tensor([ids], dtype=torch.int64)
        dev = self.sae.device
        special = torch.isin(tokens[0].to(dev), torch.tensor(special_token_ids(loaded.tokenizer),
                                                              dtype=torch.int64, device=dev))
        wanted = [int(f) for f in features] if features else []
        traces: dict[int, torch.Tensor] = {}
        k = min(top_k, self.d_sae)
        best_v = best_i = None
        max_v = torch.zeros(self.d_sae, device=dev)
        max_at = torch.zeros(self.d_sae, dtype=torch.int64, device=dev)
        n_active = torch.zeros(self.d_sae, dtype=torch.int64, device=dev)
        with torch.no_grad():
            captured = capture_many(loaded, tokens, None, [inputs.hook])[inputs.hook]
            x = prepare_input(captured, inputs.transform, inputs.head_index, inputs.hook, dev)
            for lo, chunk in self.sae.encode_chunks(x, self.feature_chunk):
                acts = chunk[0].float().masked_fill_(special.unsqueeze(-1), 0.0)  # [T, F], as the engine masks
                hi = lo + acts.shape[-1]
                for f in wanted:
                    if lo <= f < hi:
                        traces[f] = acts[:, f - lo]
                vals, idx = torch.topk(acts, min(k, acts.shape[-1]), dim=-1)
                idx = idx + lo
                if best_v is not None and best_i is not None:
                    vals, idx = torch.cat([best_v, vals], -1), torch.cat([best_i, idx], -1)
                    vals, pos = torch.topk(vals, min(k, vals.shape[-1]), dim=-1)
                    idx = idx.gather(-1, pos)
                best_v, best_i = vals, idx
                m, at = acts.max(0)
                max_v[lo:hi], max_at[lo:hi], n_active[lo:hi] = m, at, (acts > 0).sum(0)
        assert best_v is not None and best_i is not None
        order = torch.argsort(-max_v, stable=True)[:k]
        vocab = display_tokens(loaded.tokenizer)
        return LiveActivations(
            sae_id=self.sae_id, model=loaded.name, hook=inputs.hook, extraction_id=self.extraction_id,
            prepend_bos=self.prepend_bos, token_ids=ids,
            tokens=[vocab[i] if i < len(vocab) else "" for i in ids], special=special.tolist(),
            features=[self._trace(f, traces[f]) for f in wanted],
            top_features=[[FeatureValue(index=int(i), value=float(v)) for v, i in zip(vs, js, strict=True) if v > 0]
                          for vs, js in zip(best_v.tolist(), best_i.tolist(), strict=True)],
            overall=[TopFeature(index=int(i), value=float(max_v[i]), token_index=int(max_at[i]),
                                n_active=int(n_active[i])) for i in order.tolist() if max_v[i] > 0])

    @staticmethod
    def _trace(index: int, values: torch.Tensor) -> FeatureTrace:
        at = int(values.argmax())
        return FeatureTrace(index=index, values=values.tolist(), max_value=float(values[at]), max_token_index=at)


def open_sae(studio: Studio, sae_id: str, *, model: str | None = None, device: str | None = None,
             dtype: str | None = None) -> LiveSAE:
    """The SAE `sae_id` prepared for live use on `model` (default: the model of its latest extraction, else the
    SAE's own), kept by the studio's model server (built once, unloaded with the least recently used models).

    Raises:
        NotFoundError: no such SAE.
        ConflictError: the SAE is not ready, or it needs an `expected_average_only_in` factor that no extraction
            has estimated yet.
        InvalidInputError: no model to run, or the SAE names no hook.
    """
    server = model_server(studio)
    with studio.sessions() as s:
        record = get_record(s, sae_id)
        own_model = record.model_name
    if record.status != "ready":
        raise ConflictError(f"SAE {sae_id} is {record.status}; wait until it is ready")

    target = server.model_key(model, device)[:2] if model else None

    def same_model(name: str) -> bool:
        return target is None or server.model_key(name, device)[:2] == target

    conventions = _conventions(studio, sae_id, same_model if model else None)
    model_ref = model or conventions.model or own_model
    if not model_ref:
        raise InvalidInputError(f"SAE {sae_id} does not name its model; pass a model (--model / `model`)")
    if dtype is None and conventions.model and same_model(conventions.model):
        dtype = conventions.dtype  # the extraction's dtype: the same numbers
    ref, dev, dt = server.model_key(model_ref, device, dtype)

    def build() -> LiveSAE:
        sae = load_sae_for(studio, sae_id, device=dev)
        normalization: dict[str, Any] = {"mode": sae.cfg.normalize_activations}
        if sae.cfg.normalize_activations == "expected_average_only_in":
            entry = known_norm_factor(sae.cfg, conventions.normalization)
            if entry is None:
                raise ConflictError(
                    f"SAE {sae_id} normalises its inputs by a dataset-wide factor (expected_average_only_in) that "
                    f"an extraction estimates; run `mistudio extract {sae_id}` first")
            sae.fold_activation_norm_scaling_factor(float(entry["factor"]))
            normalization = {**entry, "mode": "expected_average_only_in"}
        sae.requires_grad_(False)
        return LiveSAE(
            server=server, sae_id=sae_id, sae=sae, model_ref=ref, device=dev, dtype=dt,
            hook=sae_hooks(sae, sae_id=sae_id)[0],
            prepend_bos=bool(conventions.prepend_bos if conventions.prepend_bos is not None
                             else sae.cfg.prepend_bos),
            max_tokens=max(sae.cfg.context_size or 0, conventions.context_size or 0) or DEFAULT_MAX_TOKENS,
            feature_chunk=int(conventions.feature_chunk or _DEFAULT_FEATURE_CHUNK),
            extraction_id=conventions.extraction_id, normalization=normalization)

    return server.resident((sae_id, ref, dev, dt, conventions.extraction_id), build, ref=sae_id, device=dev,
                           nbytes=lambda live: module_bytes(live.sae))

