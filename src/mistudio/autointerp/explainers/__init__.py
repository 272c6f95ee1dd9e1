"""Explanation methods, one module each, by Neuronpedia's method id: `np_max-act-logits`, `oai_token-act-pair`."""

from __future__ import annotations

from mistudio.autointerp.explainers.base import Explainer, ExplainerSettings, Messages, finish_description
from mistudio.autointerp.explainers.np_max_act_logits import MaxActivationAndLogitsExplainer
from mistudio.autointerp.explainers.oai_token_act_pair import TokenActivationPairExplainer
from mistudio.errors import InvalidInputError

DEFAULT_METHOD = "np_max-act-logits"

EXPLAINERS: dict[str, Explainer] = {
    MaxActivationAndLogitsExplainer.method: MaxActivationAndLogitsExplainer(),
    TokenActivationPairExplainer.method: TokenActivationPairExplainer(),
}


def get_explainer(method: str) -> Explainer:
    """The explainer of `method`.

    Raises:
        InvalidInputError: no such method.
    """
    try:
        return EXPLAINERS[method]
    except KeyError:
        raise InvalidInputError(f"unknown explanation method {method!r}; choose one of "
                                f"{', '.join(sorted(EXPLAINERS))}") from None


__all__ = ["DEFAULT_METHOD", "EXPLAINERS", "Explainer", "ExplainerSettings", "Messages", "finish_description",
           "get_explainer"]
