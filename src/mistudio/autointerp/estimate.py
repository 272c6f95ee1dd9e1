"""Cost and time of an explain run before it starts, and the measured cost while it runs.

Tokens are counted with `client.approx_tokens` (characters / 4, the rule of thumb for English text with GPT-style
BPE vocabularies; real counts vary by tokenizer, roughly ±25 %) on the prompts the run would send — built for a
sample of the selected features — plus 4 tokens of chat framing per message (OpenAI's count for its chat format).
Completion tokens use the method's typical answer length. Time assumes `concurrency` requests always in flight,
each taking `assumed_latency_s`. The run itself measures cost from the endpoint's `usage`.
"""

from __future__ import annotations

from collections.abc import Sequence

from mistudio.autointerp.client import approx_tokens
from mistudio.errors import InvalidInputError

TOKENS_PER_MESSAGE = 4


def prompt_tokens(messages: Sequence[dict[str, str]]) -> int:
    """Approximate tokens of a chat prompt."""
    return sum(approx_tokens(m.get("content", "")) + TOKENS_PER_MESSAGE for m in messages) + 2


def cost_usd(prompt: int, completion: int, price_in: float | None, price_out: float | None) -> float | None:
    """USD for the token counts at the prices per million tokens (None unless both prices are known)."""
    if price_in is None or price_out is None:
        return None
    return prompt * price_in / 1e6 + completion * price_out / 1e6


def check_prices(max_cost: float | None, price_in: float | None, price_out: float | None) -> None:
    """A cost limit needs both prices.

    Raises:
        InvalidInputError: `max_cost` without both prices.
    """
    if max_cost is not None and (price_in is None or price_out is None):
        raise InvalidInputError("--max-cost needs the endpoint's prices: pass --price-input and --price-output "
                                "(USD per million tokens; 0 for a local server)")


def run_seconds(n_requests: int, concurrency: int, latency_s: float) -> float:
    """Seconds for `n_requests` with `concurrency` in flight, each `latency_s` long."""
    if n_requests == 0:
        return 0.0
    waves = -(-n_requests // max(1, concurrency))
    return float(waves * latency_s)
