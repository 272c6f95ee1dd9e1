"""End to end on real parts: a tiny random-weight model, a random SAE imported into the catalog from another
library's format, a real extraction, the export job, the validator, and sae_lens loading the SAELens folder."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pytest
import torch
from sae_factories import make_sae, write_in_format

from mistudio.catalog.service import import_local
from mistudio.dashboards.neuronpedia import neuronpedia_feature
from mistudio.dashboards.reader import feature_dashboard
from mistudio.export.config import make_config
from mistudio.export.service import start_export
from mistudio.export.validate.validator import validate_export
from mistudio.extraction.service import extract, get_store
from mistudio.studio import Studio
from mistudio.testing.tiny_models import build_tiny_model

D_MODEL, D_SAE = 64, 32


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("gpt2", tmp_path_factory.mktemp("model") / "gpt2", n_layers=5, d_model=D_MODEL)


@pytest.mark.parametrize(("arch", "fmt"), [("jumprelu", "mistudio"), ("topk", "dictionary_learning")])
def test_extraction_export_validate_and_load_in_sae_lens(studio: Studio, model: Path, tmp_path: Path, arch: str,
                                                         fmt: str) -> None:
    from sae_lens import SAE as LensSAE

    original = make_sae(arch, d_in=D_MODEL, d_sae=D_SAE, seed=11, model_name=str(model))
    sae_id = import_local(studio, write_in_format(original, fmt, tmp_path / "src")).id
    extraction_id = extract(studio, sae_id, str(model), "builtin:corpus", n_tokens=2048, context_size=32, top_k=20)

    intervals = arch == "jumprelu"  # one run also exports the interval (quantile-band) groups
    cfg = make_config("full", model_id="tiny-gpt2", batch_size=8, workers=2,  # forked workers read the store
                      interval_examples=intervals)
    job_id = start_export(studio, sae_id, cfg).job_id
    state = studio.runner.run_inline(job_id)
    assert state.status == "completed", state
    archive = studio.settings.absolute(state.result["output_path"])
    report = validate_export(archive)
    assert report.ok, report.to_text()
    assert report.n_features == D_SAE

    # what the archive says about each feature is what the feature store computed
    _, store = get_store(studio, sae_id, extraction_id)

    summary = store.summary_arrays()
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "x")
        meta = json.loads(zf.read("metadata.json"))
        rows = {kind: [json.loads(line) for n in zf.namelist() if f"/{kind}/batch-" in n
                       for line in gzip.decompress(zf.read(n)).splitlines()] for kind in ("features", "activations")}
        batched = {r["index"] for r in rows["features"]}
        groups = [r["binMin"] for r in rows["activations"]]
        assert {r["index"] for r in rows["activations"]} == batched
    assert min(groups) == -1 and any(g != -1 for g in groups)  # SAEDashboard's quantile bands, always
    for i in sorted(batched)[:3]:  # the rows hold the store's Neuronpedia data, not the dashboard
        npf = neuronpedia_feature(store, i)
        feature_row = next(r for r in rows["features"] if r["index"] == i)
        assert feature_row["frac_nonzero"] == npf["frac_nonzero"] and feature_row["pos_str"] == npf["pos_str"]
        assert sorted(r["values"] for r in rows["activations"] if r["index"] == i) == sorted(
            a["values"] for a in npf["activations"])
    assert meta["extraction"]["extraction_id"] == extraction_id and meta["d_sae"] == D_SAE
    assert batched == {i for i in range(D_SAE) if not summary["dead"][i]}
    for i in sorted(batched)[:5]:
        doc = json.loads(gzip.decompress((tmp_path / "x" / "features" / f"{i}.json.gz").read_bytes()))
        dash = feature_dashboard(store, i, top_examples=cfg.n_examples, include_intervals=cfg.interval_examples)
        assert [ex["max_value"] for ex in doc["activations"]] == pytest.approx(
            [ex["max_value"] for ex in dash["activations"]], abs=1e-5)
        assert doc["statistics"]["max_activation"] == pytest.approx(float(summary["max"][i]), rel=1e-5)
        assert any(ex["bin_min"] != -1 for ex in doc["activations"]) == intervals  # features/: the option decides

    lens = LensSAE.load_from_disk(str(tmp_path / "x" / "saelens"), device="cpu")
    x = torch.randn(64, D_MODEL, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(lens.encode(x), original.encode(x), atol=1e-5, rtol=1e-5)
