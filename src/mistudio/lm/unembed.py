"""The unembedding and the logit-lens matrix (final norm folded in, as TransformerLens `fold_ln` does).

`logit_lens_matrix(loaded)` equals TransformerLens' `model.W_U` after `from_pretrained(fold_ln=True, ...)`:
the final norm's gain is folded into W_U (`diag(g) @ W_U`, with `g = 1 + w` for Gemma's RMSNorm) and, for
LayerNorm models (GPT-2, GPT-NeoX), W_U is centred over d_model because the LayerNorm output it reads is
mean-free. `center_unembed=True` also removes each row's mean over the vocabulary (TransformerLens'
`center_unembed`; it shifts logits, not probabilities). Not included: the final norm's scale (it depends
on the input), its bias (a constant logit offset, folded into `b_U` by TransformerLens), and Gemma-2's
`final_logit_softcapping` (a nonlinearity on the full logits, not part of a direction's logit lens; Gemma 3
has none). Tied embeddings (Gemma, Qwen3 small models) need nothing special: W_U is the output head's weight,
which is the embedding matrix itself (without Gemma's √d_model embedding scale, which transformers applies in the
embedding's forward). Multimodal Gemma 3 uses its language model's final norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mistudio.lm.loading import LoadedModel, module_tensor, optional_module_tensor

_FINAL_NORM = {
    "gpt2": "transformer.ln_f",
    "gpt_neox": "gpt_neox.final_layer_norm",
    "gemma3": "model.language_model.norm",  # Gemma3ForConditionalGeneration: its language model's final norm
}
_LAYER_NORM_FAMILIES = {"gpt2", "gpt_neox"}
# RMSNorm scales by (1 + weight): Gemma 1-3, and Qwen3.5 / Qwen3-Next (zero-initialised gains).
_OFFSET_RMS_FAMILIES = {"gemma", "gemma2", "gemma3_text", "gemma3", "qwen3_5", "qwen3_5_text", "qwen3_5_moe",
                        "qwen3_5_moe_text", "qwen3_next"}


@dataclass
class Unembed:
    """Unembedding weights in TransformerLens orientation (fp32, on the model's device)."""

    W_U: torch.Tensor  # [d_model, vocab]
    b_U: torch.Tensor | None  # [vocab]
    ln_final_weight: torch.Tensor  # [d_model], the effective gain (1 + w for Gemma)
    ln_final_bias: torch.Tensor | None  # [d_model]
    folded_W_U: torch.Tensor  # [d_model, vocab], see logit_lens_matrix


def unembedding(loaded: LoadedModel) -> Unembed:
    """W_U, b_U and the final norm of a loaded model, plus W_U with the final norm folded in."""
    model = loaded.model
    head = model.get_output_embeddings()
    W_U = module_tensor(head, "weight").detach().float().T.contiguous()
    head_bias = optional_module_tensor(head, "bias")
    b_U = head_bias.detach().float() if head_bias is not None else None
    norm = model.get_submodule(_FINAL_NORM.get(loaded.family, "model.norm"))
    weight = module_tensor(norm, "weight").detach().float()
    if loaded.family in _OFFSET_RMS_FAMILIES:
        weight = 1.0 + weight
    norm_bias = optional_module_tensor(norm, "bias")
    bias = norm_bias.detach().float() if norm_bias is not None else None
    folded = weight[:, None] * W_U
    if loaded.family in _LAYER_NORM_FAMILIES:
        folded = folded - folded.mean(0, keepdim=True)
    return Unembed(W_U=W_U, b_U=b_U, ln_final_weight=weight, ln_final_bias=bias, folded_W_U=folded)


def uses_layer_norm(loaded: LoadedModel) -> bool:
    """Whether the model's norms are LayerNorms (GPT-2, GPT-NeoX), which TransformerLens centres weights for."""
    return loaded.family in _LAYER_NORM_FAMILIES


def logit_lens_matrix(loaded: LoadedModel, center_unembed: bool = False, *, fold_ln: bool = True) -> torch.Tensor:
    """[d_model, vocab] matrix M so that `direction @ M` is the direction's logit lens: TransformerLens's `W_U`
    after `fold_ln` (the default) and `center_unembed` as asked; `fold_ln=False` starts from the raw `W_U`
    (`from_pretrained_no_processing`)."""
    unembed = unembedding(loaded)
    matrix = unembed.folded_W_U if fold_ln else unembed.W_U
    if center_unembed:
        matrix = matrix - matrix.mean(-1, keepdim=True)
    return matrix
