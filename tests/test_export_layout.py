"""The archive layout: every member path is built and classified by `export.layout`."""

from __future__ import annotations

from mistudio.export import layout


def test_paths_are_built_once() -> None:
    assert layout.feature_member(7, gzipped=True) == "features/7.json.gz"
    assert layout.feature_member(7, gzipped=False) == "features/7.json"
    assert layout.saedashboard_batch(3) == "neuronpedia/batch-3.json"
    assert layout.np_bulk_folder("gpt2-small", "8-res-jb") == "neuronpedia/exports/gpt2-small/8-res-jb"
    assert layout.bulk_batch_file(2) == "batch-2.jsonl.gz"


def test_members_are_classified() -> None:
    folder = layout.np_bulk_folder("m", "0-s")
    kinds = {name: layout.member_kind(name) for name in (
        layout.METADATA, layout.feature_member(1, gzipped=True), layout.saedashboard_batch(0),
        f"{folder}/activations/{layout.bulk_batch_file(0)}", f"{folder}/{layout.BULK_SOURCE}", layout.SHA256SUMS,
        layout.EXPLANATIONS)}
    assert kinds == {"metadata.json": "metadata", "features/1.json.gz": "feature",
                     "neuronpedia/batch-0.json": "batch",
                     "neuronpedia/exports/m/0-s/activations/batch-0.jsonl.gz": "activations",
                     "neuronpedia/exports/m/0-s/source.jsonl": None, "SHA256SUMS": None,
                     "explanations/explanations.json": None}
    assert layout.feature_index_of("features/12.json") == 12
    assert layout.feature_index_of("features/x.json") is None
    assert layout.feature_index_of("neuronpedia/exports/m/0-s/features/batch-0.jsonl.gz") is None
