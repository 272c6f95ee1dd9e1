"""The examples a scorer shows a judge: a short token context cut from a store window, with its true activations."""

from __future__ import annotations

from dataclasses import dataclass, field

NON_ACTIVATING = -1
"""The `quantile` of a non-activating example (delphi's `distance = -1`)."""
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def display_token(token: str) -> str:
    """A token as a prompt line shows it: newline, tab and carriage return escaped (`\\n`, `\\t`, `\\r`), so
    one example stays one line."""
    for raw, shown in _ESCAPES.items():
        token = token.replace(raw, shown)
    return token


@dataclass(frozen=True)
class ScoringExample:
    """One context: display tokens, the feature's true activation at each, and where it came from.

    `quantile` is the band an activating example was drawn from (0 = the top examples, then 1, 2, … the
    quantile bands from the highest down) or `NON_ACTIVATING`; `window_index`/`start` locate the context in the extraction's windows.
    """

    tokens: list[str]
    values: list[float]
    activating: bool
    quantile: int = NON_ACTIVATING
    window_index: int = -1
    start: int = 0
    token_ids: list[int] = field(default_factory=list)

    @property
    def max_value(self) -> float:
        """The largest activation in the context (0 for a non-activating one)."""
        return max(self.values, default=0.0)

    @property
    def text(self) -> str:
        """The context as one line of plain text (`display_token` of each token)."""
        return "".join(display_token(t) for t in self.tokens)


def centred_span(length: int, position: int, context: int) -> tuple[int, int]:
    """`[start, stop)` of a `context`-token span of a `length`-token window holding `position`, placed as delphi
    centres its examples: `context - context // 4` tokens before the position (shifted to fit the window)."""
    if length <= context:
        return 0, length
    start = max(0, min(position - (context - context // 4), length - context))
    return start, start + context


__all__ = ["NON_ACTIVATING", "ScoringExample", "centred_span", "display_token"]
