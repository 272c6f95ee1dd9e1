"""The one Gemma Scope path grammar: every reader of widths, labels and leaf folders agrees."""

from __future__ import annotations

import pytest

from mistudio.export.neuronpedia.ids import default_source_set
from mistudio.saes.gemma_scope_paths import (
    gemma_scope_path,
    parse_folder,
    parse_leaf,
    width_features,
    width_label,
)
from mistudio.saes.model import layer_from_hook_name

WIDTHS = {"16k": 16_384, "65k": 65_536, "131k": 131_072, "262k": 262_144, "524k": 524_288, "1m": 1_048_576}


@pytest.mark.parametrize(("label", "n"), WIDTHS.items())
def test_width_label_and_count_round_trip(label: str, n: int) -> None:
    assert width_features(label) == n
    assert width_label(n) == label
    assert parse_folder(f"layer_3/width_{label}/average_l0_50")["width"] == n
    assert default_source_set("blocks.3.hook_resid_post", n) == f"mistudio-res-{label}"
    key = parse_leaf(gemma_scope_path(3, n, 50))
    assert key is not None and (key.layer, key.width, key.l0) == (3, label, 50)


def test_small_widths_keep_their_count() -> None:
    assert width_label(300) == "300" and default_source_set(None, 40) == "mistudio-res-40"


@pytest.mark.parametrize(("hook", "layer"), [("blocks.5.hook_resid_post", 5), ("blocks.11.attn.hook_z", 11),
                                             ("layers.3", 3), ("model.layers.7.mlp", 7), ("hook_embed", None)])
def test_one_layer_parser(hook: str, layer: int | None) -> None:
    assert layer_from_hook_name(hook) == layer


def test_gemma_scope_2_leaves_repos_and_hooks() -> None:
    from mistudio.saes.gemma_scope_paths import (
        gemma_scope_2_hooks,
        gemma_scope_2_path,
        parse_leaf_2,
        parse_repo,
        parse_repo_2,
    )

    key = parse_leaf_2("transcoder_all/layer_7_width_262k_l0_big_affine")
    assert key is not None and (key.site, key.kind, key.layer, key.width, key.l0, key.affine) == (
        "transcoder_all", "transcoder", 7, "262k", "big", True)
    assert key.l0_label == "big_affine"
    assert gemma_scope_2_path(key.site, 7, 262144, "big", affine=True) == "transcoder_all/layer_7_width_262k_l0_big_affine"
    assert parse_leaf_2("resid_post/layer_12_width_16k_l0_medium") is not None
    assert parse_leaf_2("resid_post/layer_12_width_16k_l0_huge") is None
    assert parse_leaf_2("layer_12/width_16k/average_l0_82") is None
    assert parse_leaf("resid_post/layer_12_width_16k_l0_small") is None  # the two grammars never overlap
    assert parse_repo_2("google/gemma-scope-2-12b-it") == "google/gemma-3-12b-it"
    assert parse_repo_2("/cache/models--google--gemma-scope-2-270m-pt/snapshots/x") == "google/gemma-3-270m"
    assert parse_repo_2("google/gemma-scope-2b-pt-res") is None and parse_repo("google/gemma-scope-2-1b-pt") is None
    hooks = gemma_scope_2_hooks(key)
    assert hooks == {"hook_name": "blocks.7.hook_mlp_in", "hook_name_out": "blocks.7.hook_mlp_out",
                     "hf_hook_name": "model.layers.7.pre_feedforward_layernorm.output",
                     "hf_hook_name_out": "model.layers.7.post_feedforward_layernorm.output"}
    transcoders = parse_repo("google/gemma-scope-2b-pt-transcoders")
    assert transcoders is not None and transcoders["site"] == "transcoders"


def test_resolve_gemma_scope_2_choice_lists_valid_choices() -> None:
    from mistudio.errors import NotFoundError
    from mistudio.saes.gemma_scope_paths import parse_leaf_2, resolve_choice_2

    folders = ["resid_post/layer_3_width_16k_l0_small", "resid_post/layer_3_width_16k_l0_big",
               "resid_post/layer_3_width_262k_l0_medium", "transcoder/layer_3_width_16k_l0_big_affine",
               "transcoder/layer_3_width_16k_l0_big"]
    keys = [k for k in map(parse_leaf_2, folders) if k is not None]
    assert resolve_choice_2(keys, "transcoder", 3, 16384, "big_affine") == "transcoder/layer_3_width_16k_l0_big_affine"
    assert resolve_choice_2(keys, "resid_post", 3, "262k", "medium") == "resid_post/layer_3_width_262k_l0_medium"
    with pytest.raises(NotFoundError, match="sites: resid_post, transcoder"):
        resolve_choice_2(keys, "mlp_out", 3, "16k", "small")
    with pytest.raises(NotFoundError, match="layers available: 3"):
        resolve_choice_2(keys, "resid_post", 4, "16k", "small")
    with pytest.raises(NotFoundError, match="widths: 16k, 262k"):
        resolve_choice_2(keys, "resid_post", 3, "65k", "small")
    with pytest.raises(NotFoundError, match="L0 choices: small, big"):
        resolve_choice_2(keys, "resid_post", 3, "16k", "medium")
