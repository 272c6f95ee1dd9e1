"""Validation of exports: the export JSON Schema, the real Neuronpedia batch format (oracle table from SAEDashboard),
broken exports caught with the right messages, and auto-fix."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pytest
from sae_factories import make_sae
from test_export_pipeline import run, tiny_inputs

from mistudio.export.archive.checksums import write_sha256sums
from mistudio.export.validate.autofix import autofix_export
from mistudio.export.validate.feature_checks import check_feature_document
from mistudio.export.validate.schema import schema_issues
from mistudio.export.validate.validator import validate_export

# SAEDashboard NeuronpediaDashboardFeature.to_dict / NeuronpediaDashboardActivation.to_dict:
# key → accepted JSON types. Written independently of mistudio.export.neuronpedia.saedashboard_batches on purpose.
FEATURE_ORACLE = {
    "feature_index": int, "neuron_alignment_indices": list, "neuron_alignment_values": list,
    "neuron_alignment_l1": list, "correlated_neurons_indices": list, "correlated_neurons_l1": list,
    "correlated_neurons_pearson": list, "correlated_features_indices": list, "correlated_features_l1": list,
    "correlated_features_pearson": list, "neg_str": list, "neg_values": list, "pos_str": list, "pos_values": list,
    "frac_nonzero": float, "freq_hist_data_bar_values": list, "freq_hist_data_bar_heights": list,
    "logits_hist_data_bar_heights": list, "logits_hist_data_bar_values": list, "n_prompts_total": int,
    "n_tokens_in_prompt": int, "dataset": str, "decoder_weights_dist": list, "activations": list, "vector": list,
}
ACTIVATION_ORACLE = {"bin_min": (int, float), "bin_max": (int, float), "bin_contains": (int, float),
                     "tokens": list, "values": list, "qualifying_token_index": int}


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("exp")
    run(tiny_inputs(make_sae("standard", d_in=16, d_sae=40, seed=3)), tmp / "e.zip", saedashboard_batches=True)
    with zipfile.ZipFile(tmp / "e.zip") as zf:
        zf.extractall(tmp / "e")
    return tmp


def test_batch_files_match_saedashboard(export_dir: Path) -> None:
    batches = sorted((export_dir / "e" / "neuronpedia").glob("batch-*.json"))
    assert batches
    n = 0
    for path in batches:
        doc = json.loads(path.read_text())
        assert list(doc) == ["model_id", "layer", "sae_set", "sae_id_suffix", "features"]
        for feat in doc["features"]:
            n += 1
            assert set(feat) == set(FEATURE_ORACLE)
            for key, kind in FEATURE_ORACLE.items():
                assert isinstance(feat[key], kind), key
            assert all(isinstance(v, float) for v in feat["pos_values"] + feat["freq_hist_data_bar_values"])
            assert all(isinstance(v, int) for v in feat["freq_hist_data_bar_heights"])
            assert len(feat["freq_hist_data_bar_values"]) == len(feat["freq_hist_data_bar_heights"]) == 50
            assert feat["vector"] == [] and feat["decoder_weights_dist"] == []
            assert feat["pos_values"] == sorted(feat["pos_values"], reverse=True)
            assert feat["neg_values"] == sorted(feat["neg_values"])
            for act in feat["activations"]:
                assert set(act) == set(ACTIVATION_ORACLE)
                for key, kind in ACTIVATION_ORACLE.items():
                    assert isinstance(act[key], kind), key
                if act["bin_min"] == -1:  # the top group
                    assert act["bin_contains"] == -1
                else:  # a quantile band
                    assert 0 <= act["bin_min"] <= act["bin_max"] and 0 <= act["bin_contains"] <= 1
                assert len(act["tokens"]) == len(act["values"])
                assert all(v == round(v, 5) for v in act["values"])
    skipped = json.loads((export_dir / "e" / "neuronpedia" / "skipped_indexes.json").read_text())
    assert n + len(skipped["skipped_indexes"]) == 40


def test_every_feature_json_validates_against_the_schema(export_dir: Path) -> None:
    files = sorted((export_dir / "e" / "features").iterdir())
    assert len(files) == 40
    for path in files:
        doc = json.loads(gzip.decompress(path.read_bytes()))
        assert schema_issues("feature", doc, path.name) == []
    report = validate_export(export_dir / "e.zip")
    assert report.ok, report.to_text()
    assert report.n_features == 40


def _break(root: Path) -> None:
    """Damage an export in the ways the issue lists."""
    feature = root / "features" / "2.json.gz"
    doc = json.loads(gzip.decompress(feature.read_bytes()))
    ex = doc["activations"][0]
    ex["values"] = ex["values"][:-1]                     # length mismatch
    ex["tokens"][0] = "\ud800"                           # lone surrogate
    ex["max_token_index"] = 999                           # out of range
    del doc["statistics"]["activation_frequency"]        # missing field
    text = json.dumps(doc).replace(str(ex["values"][1]), "NaN", 1)
    feature.write_bytes(gzip.compress(text.encode("utf-8", errors="surrogatepass")))
    batch_path = root / "neuronpedia" / "batch-0.json"
    batch = json.loads(batch_path.read_text())
    del batch["features"][0]["correlated_features_l1"]
    batch["features"][0]["activations"][0]["tokens"][0] = "\u0120the"
    batch_path.write_text(json.dumps(batch))
    (root / "README.md").write_text("tampered")


def test_broken_export_is_caught_and_fixed(export_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    with zipfile.ZipFile(export_dir / "e.zip") as zf:
        zf.extractall(broken)
    _break(broken)
    report = validate_export(broken)
    codes = {i.code for i in report.issues}
    assert {"length_mismatch", "lone_surrogate", "index_out_of_range", "missing_field", "non_finite",
            "raw_bpe_token", "checksum_mismatch"} <= codes, report.to_text()
    assert not report.ok
    text = report.to_text()
    assert "features/2.json.gz: activations[0]" in text and "fix:" in text
    assert any(i.location.startswith("README.md") and i.code == "checksum_mismatch" for i in report.issues)
    result = autofix_export(broken)
    after = {i["code"] for i in result["after"]["issues"]}
    assert "features/2.json.gz" in result["fixed_files"] and "neuronpedia/batch-0.json" in result["fixed_files"]
    assert not after & {"length_mismatch", "lone_surrogate", "index_out_of_range", "non_finite", "raw_bpe_token",
                        "checksum_mismatch"}
    assert after == {"missing_field"}  # activation_frequency cannot be invented
    fixed = json.loads((broken / "neuronpedia" / "batch-0.json").read_text())
    assert fixed["features"][0]["correlated_features_l1"] == []
    assert fixed["features"][0]["activations"][0]["tokens"][0] == " the"


def test_autofix_works_on_a_zip(export_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "z"
    with zipfile.ZipFile(export_dir / "e.zip") as zf:
        zf.extractall(root)
    (root / "README.md").write_text("changed on purpose")
    write_sha256sums(root)
    (root / "README.md").write_text("changed again")
    from mistudio.export.archive.deterministic_zip import zip_folder

    zip_folder(root, tmp_path / "z.zip")
    assert not validate_export(tmp_path / "z.zip").ok
    result = autofix_export(tmp_path / "z.zip")
    assert result["after"]["ok"] and validate_export(tmp_path / "z.zip").ok


def test_too_few_examples_counts_the_top_group_only() -> None:
    def example(bin_min: float) -> dict:
        return {"tokens": ["a", "b"], "values": [0.0, 1.0], "max_value": 1.0, "max_token_index": 1,
                "bin_min": bin_min, "bin_max": 1.0, "bin_contains": -1 if bin_min == -1 else 0.2}

    doc = {"feature_index": 0, "statistics": {"dead": False},
           "activations": [example(-1)] * 10 + [example(0.2)] * 25}
    issues = [i for i in check_feature_document(doc, "features/0.json.gz") if i.code == "too_few_examples"]
    assert len(issues) == 1 and issues[0].message.startswith("10 top examples")
    doc["activations"] = [example(-1)] * 20 + [example(0.2)] * 5
    assert not [i for i in check_feature_document(doc, "f") if i.code == "too_few_examples"]
