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
