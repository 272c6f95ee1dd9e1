"""The Neuronpedia outputs come from the Neuronpedia data (never our dashboard), the archive names the model and
datasets by ids (never local paths), the model row has the model's shape, and the validator checks all three."""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from sae_factories import make_sae
from test_export_pipeline import run, tiny_inputs

from mistudio.errors import ExportValidationError, InvalidInputError
from mistudio.export.archive.jsonio import render_tokens
from mistudio.export.neuronpedia.saedashboard_batches import ACTIVATION_KEYS, FEATURE_KEYS
from mistudio.export.public_names import is_local_reference
from mistudio.export.validate.validator import validate_export
from mistudio.saes.model import SAE


@pytest.fixture(scope="module")
def sae() -> SAE:
    return make_sae("standard", d_in=16, d_sae=40, seed=3)


def _jsonl_gz(zf: zipfile.ZipFile, folder: str, kind: str) -> list[dict]:
    return [json.loads(line) for n in sorted(zf.namelist()) if n.startswith(f"{folder}/{kind}/")
            for line in gzip.decompress(zf.read(n)).splitlines()]


def test_batch_files_and_feature_rows_hold_the_neuronpedia_data(sae: SAE, tmp_path: Path) -> None:
    inputs = tiny_inputs(sae)
    run(inputs, tmp_path / "a.zip", saedashboard_batches=True)
    assert inputs.neuronpedia is not None
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        meta = json.loads(zf.read("metadata.json"))
        batch = [f for n in sorted(zf.namelist()) if n.startswith("neuronpedia/batch-")
                 for f in json.loads(zf.read(n))["features"]]
        folder = f"neuronpedia/exports/tiny-gpt2/{meta['neuronpedia']['source_id']}"
        rows = {r["index"]: r for r in _jsonl_gz(zf, folder, "features")}
        doc = json.loads(gzip.decompress(zf.read("features/0.json.gz")))
        skipped = json.loads(zf.read("neuronpedia/skipped_indexes.json"))["skipped_indexes"]
    live = [i for i in range(40) if inputs.neuronpedia.neuronpedia_feature(i)["activations"]]
    assert sorted(f["feature_index"] for f in batch) == sorted(rows) == live and skipped == sorted(set(range(40)) - set(live))
    for feat in batch:
        npf = inputs.neuronpedia.neuronpedia_feature(feat["feature_index"])
        assert list(feat) == list(FEATURE_KEYS)  # SAEDashboard's keys in its order
        for key in FEATURE_KEYS:
            if key == "activations":
                assert [list(a) for a in feat[key]] == [list(ACTIVATION_KEYS)] * len(npf[key])
                assert [a["values"] for a in feat[key]] == [a["values"] for a in npf[key]]
                assert [a["tokens"] for a in feat[key]] == [render_tokens(a["tokens"]) for a in npf[key]]
                assert [(a["bin_min"], a["bin_max"], a["bin_contains"], a["qualifying_token_index"])
                        for a in feat[key]] == [(a["bin_min"], a["bin_max"], a["bin_contains"],
                                                 a["qualifying_token_index"]) for a in npf[key]]
            elif key in ("pos_str", "neg_str"):
                assert feat[key] == render_tokens(npf[key])
            elif key == "dataset":
                assert feat[key] == "tiny/dataset"
            else:
                assert feat[key] == npf[key], key
        row = rows[feat["feature_index"]]
        assert row["topkCosSimIndices"] == npf["topk_cos_sim_indices"] and row["topkCosSimValues"] == npf["topk_cos_sim_values"]
        assert row["neuron_alignment_indices"] == npf["neuron_alignment_indices"] and len(row["neuron_alignment_l1"]) == 3
        assert row["correlated_features_indices"] == npf["correlated_features_indices"]
        assert row["maxActApprox"] == row["vectorDefaultSteerStrength"] == max(max(a["values"]) for a in npf["activations"])
        assert row["freq_hist_data_bar_values"] == npf["freq_hist_data_bar_values"] and len(row["freq_hist_data_bar_values"]) == 50
    # features/ keeps our dashboard: its own histogram edges and statistics, the example's dataset named by its id
    assert len(doc["histogram"]["bin_edges"]) == 51 and doc["activations"][0]["source"]["dataset"] == "tiny/dataset"


def test_logit_lens_option_changes_only_the_neuronpedia_logits(sae: SAE, tmp_path: Path) -> None:
    inputs = tiny_inputs(sae)
    run(inputs, tmp_path / "np.zip", saedashboard_batches=True)
    run(inputs, tmp_path / "folded.zip", saedashboard_batches=True, np_logit_lens="folded")
    with zipfile.ZipFile(tmp_path / "np.zip") as a, zipfile.ZipFile(tmp_path / "folded.zip") as b:
        first = json.loads(a.read("neuronpedia/batch-0.json"))["features"][0]
        second = json.loads(b.read("neuronpedia/batch-0.json"))["features"][0]
        assert a.read("features/0.json.gz") == b.read("features/0.json.gz")
        assert json.loads(b.read("metadata.json"))["export"]["np_logit_lens"] == "folded"
    assert second["pos_values"] == [round(v / 2, 3) for v in first["pos_values"]]


def test_a_store_without_neuronpedia_data_is_refused(sae: SAE, tmp_path: Path) -> None:
    inputs = dataclasses.replace(tiny_inputs(sae), neuronpedia=None)
    with pytest.raises(ExportValidationError, match=r"run `mistudio extract sae-1 …` again"):
        run(inputs, tmp_path / "x.zip")
    run(inputs, tmp_path / "saelens.zip", format="saelens")  # the SAELens folder needs no Neuronpedia data


def test_local_model_and_dataset_need_ids(tmp_path: Path) -> None:
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    sae = make_sae("standard", d_in=16, d_sae=24, seed=4, model_name=str(model_dir))
    sae.cfg.dataset_path = str(tmp_path / "train.jsonl")
    inputs = tiny_inputs(sae, n_windows=24)
    local_text = str(tmp_path / "texts.txt")
    manifest = {**inputs.source.manifest, "dataset": local_text, "model": str(model_dir),
                "model_shape": {"n_layers": 6, "d_mlp": 1536}}
    inputs.source._manifest = manifest  # type: ignore[attr-defined]  # the extraction read a local file
    with pytest.raises(InvalidInputError, match=r"model is a local folder .*--model-id"):
        run(inputs, tmp_path / "a.zip", model_id=None)
    with pytest.raises(InvalidInputError, match=r"local path .*texts\.txt.*--dataset-id"):
        run(inputs, tmp_path / "a.zip", model_id="acme/my-model")
    run(inputs, tmp_path / "a.zip", model_id="acme/my-model", dataset_id="acme/texts")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        zf.extractall(tmp_path / "a")
    report = validate_export(tmp_path / "a.zip")
    assert report.ok, report.to_text()
    assert not [i for i in report.issues if i.code in ("local_path", "model_shape_unknown")]
    text = "\n".join(p.read_text(errors="replace") for p in (tmp_path / "a").rglob("*")
                     if p.is_file() and p.suffix in (".json", ".yaml", ".md", ".jsonl"))
    assert str(tmp_path) not in text
    cfg = json.loads((tmp_path / "a" / "saelens" / "cfg.json").read_text())["metadata"]
    assert cfg["model_name"] == "acme/my-model" and cfg["dataset_path"] == "acme/texts"
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    assert meta["neuronpedia"]["model_id"] == "my-model" and meta["extraction"]["dataset"] == "acme/texts"
    folder = tmp_path / "a" / "neuronpedia" / "exports" / "my-model" / meta["neuronpedia"]["source_id"]
    model_row = json.loads((folder / "model.jsonl").read_text())
    source_row = json.loads((folder / "source.jsonl").read_text())
    assert (model_row["layers"], model_row["neuronsPerLayer"]) == (6, 1536) and source_row["dataset"] == "acme/texts"


def test_is_local_reference() -> None:
    assert all(is_local_reference(v) for v in ("/data/x.txt", "~/m", "./m", "../m", "file:///x", "C:\\m", "a/b/c"))
    assert not any(is_local_reference(v) for v in ("google/gemma-2-2b", "gpt2-small", "builtin:corpus", None, ""))


def _rewrite(src: Path, dest: Path, edit: dict[str, object]) -> None:
    """A copy of the unzipped export `src` at `dest` with `edit` applied: {member: new text or callable}."""
    shutil.copytree(src, dest)
    for name, change in edit.items():
        path = dest / name
        if name.endswith(".gz"):
            data = gzip.decompress(path.read_bytes()).decode()
            path.write_bytes(gzip.compress(change(data).encode()))  # type: ignore[operator]
        else:
            path.write_text(change(path.read_text()))  # type: ignore[operator]


def test_validator_finds_local_paths_unknown_shape_and_wrong_histograms(sae: SAE, tmp_path: Path) -> None:
    run(tiny_inputs(sae), tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        zf.extractall(tmp_path / "a")
        meta = json.loads(zf.read("metadata.json"))
    folder = f"neuronpedia/exports/tiny-gpt2/{meta['neuronpedia']['source_id']}"
    report = validate_export(tmp_path / "a")
    assert report.ok and not report.issues, report.to_text()

    def log_binned(text: str) -> str:
        rows = [json.loads(line) for line in text.splitlines()]
        rows[0]["freq_hist_data_bar_values"] = [round(1.2 ** k / 100, 5) for k in range(50)]
        rows[1]["freq_hist_data_bar_values"] = rows[1]["freq_hist_data_bar_values"][:49]
        rows[1]["freq_hist_data_bar_heights"] = rows[1]["freq_hist_data_bar_heights"][:49]
        return "".join(json.dumps(r) + "\n" for r in rows)

    _rewrite(tmp_path / "a", tmp_path / "b", {
        "saelens/cfg.json": lambda t: t.replace('"tiny-gpt2"', '"/home/me/models/tiny"'),
        "README.md": lambda t: t + "\nmodel at /home/me/models/tiny\n",
        "saelens/pretrained_saes.yaml": lambda t: t.replace("repo_id: YOUR-HF-USER/YOUR-REPO", "repo_id: ~/repo"),
        f"{folder}/source.jsonl": lambda t: t.replace('"tiny/dataset"', '"/data/texts.jsonl"'),
        f"{folder}/model.jsonl": lambda t: t.replace('"layers":2', '"layers":0'),
        f"{folder}/features/batch-0.jsonl.gz": log_binned,
    })
    issues = validate_export(tmp_path / "b").issues
    local = {i.location.split(":")[0] for i in issues if i.code == "local_path"}
    assert local == {"saelens/cfg.json", "README.md", "saelens/pretrained_saes.yaml", f"{folder}/source.jsonl"}
    assert {i.code for i in issues if i.location.startswith(f"{folder}/features/batch-0")} >= {
        "hist_not_linear", "hist_shape"}
    assert all(i.severity == "error" for i in issues if i.code in ("local_path", "hist_not_linear", "hist_shape"))
    shape = [i for i in issues if i.code == "model_shape_unknown"]  # unknown model shape: a warning only
    assert [(i.location.rsplit(".", 1)[-1], i.severity) for i in shape] == [("layers", "warning")]


def test_readme_says_how_to_publish(sae: SAE, tmp_path: Path) -> None:
    run(tiny_inputs(sae), tmp_path / "a.zip", hf_repo_id="me/my-saes")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        readme = zf.read("README.md").decode()
        meta = json.loads(zf.read("metadata.json"))
        pretrained = zf.read("saelens/pretrained_saes.yaml").decode()
    folder = f"neuronpedia/exports/tiny-gpt2/{meta['neuronpedia']['source_id']}"
    assert f"`{folder}/`" in readme and "s3://neuronpedia-datasets/v1/" in readme
    assert "mistudio export upload-neuronpedia THIS.zip --api-key" in readme
    assert "neuron alignment" in readme and "histograms" in readme  # what the upload API does not take
    sae_folder = "blocks.1.hook_resid_post"
    assert f"hf upload me/my-saes saelens/ {sae_folder} --repo-type model" in readme
    assert f"path: {sae_folder}" in pretrained


def test_older_stores_read_the_model_shape_from_its_config(tmp_path: Path) -> None:
    from mistudio.export.public_names import resolve_public_names
    from mistudio.testing.tiny_models import build_tiny_model

    folder = build_tiny_model("llama", tmp_path / "llama", n_layers=3)
    from transformers import AutoConfig

    expected = AutoConfig.from_pretrained(folder).intermediate_size
    names = resolve_public_names(sae_model="acme/tiny-llama", extraction_model=str(folder), dataset="acme/texts",
                                 training_dataset=None, model_id=None, dataset_id=None, model_shape=None)
    assert (names.model, names.n_layers, names.d_mlp) == ("acme/tiny-llama", 3, expected)
    unknown = resolve_public_names(sae_model="acme/not-downloaded", extraction_model=None, dataset="acme/texts",
                                   training_dataset=None, model_id=None, dataset_id=None)
    assert (unknown.n_layers, unknown.d_mlp) == (0, 0)  # not readable offline: the validator warns
