"""Generation on the HF model with a steering hook at the SAE's hook module (Neuronpedia's semantics).

* The prompt: with `chat`, the tokenizer's chat template applied to one user message with the generation prompt
  (a tokenizer without a template gets Neuronpedia's generic ChatML template); otherwise the text, with the BOS
  token in front when the SAE's `prepend_bos` says so (as the extraction windows are built).
* The hook: `lm.hooks.resolve_hook` finds the HF module; the activation is mapped into the SAE's input space by
  the extraction's activation transform (`lm.processing`), steered there (`steering.methods`), and the change is
  written back. The transforms are shifts and centrings that the model's following norms undo, so this equals
  steering the TransformerLens activation Neuronpedia's server steers.
* Sampling (TransformerLens `sample_logits`, which Neuronpedia's server calls): temperature 0 is greedy;
  otherwise logits / temperature, minus `freq_penalty ×` the count of each token in the sequence so far (prompt
  included; only a positive penalty applies), sampled with a `torch.Generator` seeded with `seed` (on the CPU,
  so a seed gives the same sample on any device); generation stops after an EOS token.
* Log-probabilities: log-softmax of the raw logits (before temperature and penalty) at each generated token,
  with the top `n_logprobs` candidates, as Neuronpedia's `make_logprob_from_logits`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from mistudio.datasets.windows import text_tokens
from mistudio.errors import InvalidInputError
from mistudio.lm.hooks import HookPoint
from mistudio.lm.loading import LoadedModel
from mistudio.lm.patching import ActivationPatch, check_writable
from mistudio.lm.tokens import special_token_ids, vocab_strings
from mistudio.steering.methods import SteeringTerm, SteerMethod, steering_delta

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class TokenLogprob:
    """One candidate token and its log-probability."""

    token: str
    token_id: int
    logprob: float


@dataclass
class GeneratedToken:
    """One generated token, its log-probability and the top candidates at its position."""

    token: str
    token_id: int
    logprob: float
    top_logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class Generation:
    """A completion: its text (without the prompt), its token ids and one `GeneratedToken` per token."""

    text: str
    token_ids: list[int]
    logprobs: list[GeneratedToken]


def generic_chat_template(prompt: str) -> str:
    """Neuronpedia's ChatML fallback for a tokenizer without a chat template (one user turn + generation prompt)."""
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


def prompt_token_ids(tokenizer: Any, prompt: str, *, chat: bool, prepend_bos: bool) -> list[int]:
    """The prompt's token ids: chat-templated with `chat`, else as an extraction window holds the text
    (`datasets.windows.text_tokens`: BOS first when `prepend_bos`).

    Raises:
        InvalidInputError: the prompt is empty.
    """
    if not prompt.strip():
        raise InvalidInputError("the prompt is empty; give some text to complete")
    if not chat:
        return text_tokens(prompt, tokenizer, prepend_bos=prepend_bos)
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
        return [int(t) for t in tokenizer(str(text), add_special_tokens=False)["input_ids"]]
    return text_tokens(generic_chat_template(prompt), tokenizer, prepend_bos=True)


class SteeringHook:
    """Steers the activation at one hook point: at the positions whose token ids (`current_tokens`, set before
    each forward) are not special tokens — or at every position with `steer_special_tokens`.

    Raises:
        InvalidInputError: the hook's HF tensor cannot be steered, or the SAE's width does not fit it.
    """

    def __init__(self, loaded: LoadedModel, point: HookPoint, terms: list[SteeringTerm], method: SteerMethod, *,
                 steer_special_tokens: bool, transform: Transform | None = None,
                 head_index: int | None = None) -> None:
        check_writable(loaded, point)
        self.loaded, self.point, self.terms, self.method = loaded, point, terms, method
        self.transform, self.head_index = transform, head_index
        self.d_head = loaded.d_head if point.per_head else None
        self.special = None if steer_special_tokens else torch.tensor(
            special_token_ids(loaded.tokenizer), dtype=torch.int64)
        self.current_tokens: torch.Tensor | None = None

    def _mask(self, n_positions: int) -> torch.Tensor | None:
        if self.special is None:
            return None
        tokens = self.current_tokens
        if tokens is None or tokens.shape[-1] != n_positions:
            raise RuntimeError("the steering hook was called without the token ids of its positions")
        return ~torch.isin(tokens.cpu(), self.special)

    def steer(self, h: torch.Tensor) -> torch.Tensor:
        """The steered HF tensor for the HF tensor `h` [batch, pos, width] at the hook.

        Raises:
            InvalidInputError: the SAE's width does not fit the hook's.
        """
        self.check_width(h.shape[-1])
        mask = self._mask(h.shape[1])
        if self.d_head is None:
            x = self.transform(h) if self.transform is not None else h
            return self._add(h, steering_delta(x, self.terms, self.method, mask), mask)
        heads = h.reshape(*h.shape[:-1], -1, self.d_head)
        part = heads[..., self.head_index, :] if self.head_index is not None else heads
        x = self.transform(part) if self.transform is not None else part
        flat = x.flatten(-2) if self.head_index is None else x
        delta = steering_delta(flat, self.terms, self.method, mask)
        if self.head_index is None:
            return self._add(h, delta, mask)
        out = heads.clone()
        out[..., self.head_index, :] = self._add(part, delta, mask)
        return out.reshape(h.shape)

    @staticmethod
    def _add(h: torch.Tensor, delta: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = (h.float() + delta).to(h.dtype)
        return out if mask is None else torch.where(mask.to(h.device).unsqueeze(-1), out, h)

    def check_width(self, width: int) -> None:
        """Refuse an SAE whose decoder width is not the hook's (per head with a head index).

        Raises:
            InvalidInputError: the widths differ.
        """
        expected = (self.d_head if self.head_index is not None else None) or width
        for term in self.terms:
            if term.vector.shape[-1] != expected:
                raise InvalidInputError(
                    f"the SAE writes {term.vector.shape[-1]}-wide vectors but {self.point.name} of "
                    f"{self.loaded.name} is {expected} wide; steer with the SAE's own model")

    @contextmanager
    def installed(self) -> Iterator[SteeringHook]:
        """Register the hook on the model for the duration of the block (`lm.patching` writes the tensor)."""
        with ActivationPatch(self.loaded, self.point, self.steer, split_heads=False).installed():
            yield self


def _display(strings: list[str], tokenizer: Any, token_id: int) -> str:
    return strings[token_id] if token_id < len(strings) else str(tokenizer.decode([token_id]))


def sample_next(logits: torch.Tensor, sequence: torch.Tensor, *, temperature: float, freq_penalty: float,
                generator: torch.Generator) -> int:
    """The next token from the last position's logits [vocab] (float32, CPU), TransformerLens's rule."""
    if temperature == 0:
        return int(logits.argmax())
    scaled = logits / temperature
    if freq_penalty > 0:
        scaled = scaled - freq_penalty * torch.bincount(sequence, minlength=scaled.shape[-1])[: scaled.shape[-1]]
    probs = torch.softmax(scaled, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.inference_mode()
def generate(loaded: LoadedModel, prompt_ids: list[int], *, n_tokens: int, temperature: float,
             freq_penalty: float, seed: int, n_logprobs: int = 0, hook: SteeringHook | None = None,
             stop_at_eos: bool = True) -> Generation:
    """Generate up to `n_tokens` tokens after `prompt_ids` (KV-cached), steered by `hook` when given."""
    tokenizer = loaded.tokenizer
    strings = vocab_strings(tokenizer)
    eos = getattr(tokenizer, "eos_token_id", None)
    generator = torch.Generator().manual_seed(int(seed))
    sequence = torch.tensor(prompt_ids, dtype=torch.int64)
    step_ids = sequence.unsqueeze(0)
    cache: Any = None
    cache_arg = "cache" if "cache" in inspect.signature(loaded.model.forward).parameters else "past_key_values"
    generated: list[int] = []
    logprobs: list[GeneratedToken] = []
    with hook.installed() if hook is not None else _nothing():
        for _ in range(n_tokens):
            if hook is not None:
                hook.current_tokens = step_ids
            out = loaded.model(input_ids=step_ids.to(loaded.device), use_cache=True, **{cache_arg: cache})
            cache = getattr(out, cache_arg, None)
            logits = out.logits[0, -1].float().cpu()
            token = sample_next(logits, sequence, temperature=temperature, freq_penalty=freq_penalty,
                                generator=generator)
            log_probs = torch.log_softmax(logits, dim=-1)
            top: list[TokenLogprob] = []
            if n_logprobs > 0:
                values, ids = torch.topk(log_probs, min(n_logprobs, log_probs.shape[-1]))
                top = [TokenLogprob(_display(strings, tokenizer, int(i)), int(i), float(v))
                       for v, i in zip(values, ids, strict=True)]
            logprobs.append(GeneratedToken(_display(strings, tokenizer, token), token, float(log_probs[token]), top))
            generated.append(token)
            sequence = torch.cat([sequence, torch.tensor([token])])
            step_ids = torch.tensor([[token]], dtype=torch.int64)
            if stop_at_eos and eos is not None and token == eos:
                break
    text = str(tokenizer.decode(generated, skip_special_tokens=False)) if generated else ""
    return Generation(text=text, token_ids=generated, logprobs=logprobs)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None
