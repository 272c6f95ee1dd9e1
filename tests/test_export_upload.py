"""Upload through the Neuronpedia API against a local server with the real routes and limits."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pytest
from fakes.fake_neuronpedia import FakeNeuronpedia
from sae_factories import make_sae
from test_export_pipeline import run, tiny_inputs

from mistudio.errors import HubAuthError, NeuronpediaUploadError
from mistudio.export.neuronpedia.upload import NOT_TAKEN_BY_API, upload_export


def test_upload_in_batches_resumes_after_failure(studio, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "e.zip"
    result = run(tiny_inputs(make_sae("standard", d_in=16, d_sae=300, seed=2)), out, format="neuronpedia")
    live = result["feature_count"] - result["n_skipped"]
    assert live > 256
    with FakeNeuronpedia(api_key="k") as server:
        with pytest.raises(HubAuthError):
            upload_export(out, "wrong", studio.sessions, host=server.url)
        server.fail_on_call = 2
        with pytest.raises(NeuronpediaUploadError, match="batch 2/3"):
            upload_export(out, "k", studio.sessions, host=server.url)
        assert len(server.features) == 128
        done = upload_export(out, "k", studio.sessions, host=server.url)
        assert done["skipped_batches"] == 1 and done["uploaded_batches"] == 2 and done["n_batches"] == 3
        assert len(server.features) == live
        assert [status for route, status in server.calls if route.endswith("upload-batch")] == [200, 500, 200, 200]
        feature = server.features[("tiny-gpt2", "1-mistudio-res-300", 1)]
        assert feature["explanations"] == [{"text": "dates and times"}]
        assert 0 <= feature["density"] <= 1 and len(feature["topLogits"]) <= 20
        again = upload_export(out, "k", studio.sessions, host=server.url)
        assert again["uploaded_batches"] == 0


def test_upload_sends_the_neuronpedia_rows_as_far_as_the_api_takes_them(studio, tmp_path: Path) -> None:  # noqa: ANN001
    """What the API stores equals the bulk-import rows (SAEDashboard's numbers, not our dashboard) on every field
    it has; nothing is sent that it would drop; the related-feature data, which it has no field for, is listed."""
    out = tmp_path / "e.zip"
    inputs = tiny_inputs(make_sae("standard", d_in=16, d_sae=40, seed=2))
    inputs.source._manifest["model_shape"] = {"n_layers": 6, "d_mlp": 64}  # type: ignore[attr-defined]
    run(inputs, out, format="neuronpedia")
    with zipfile.ZipFile(out) as zf:
        meta = json.loads(zf.read("metadata.json"))
        folder = f"neuronpedia/exports/tiny-gpt2/{meta['neuronpedia']['source_id']}"
        rows = {r["index"]: r for n in zf.namelist() if n.startswith(f"{folder}/features/")
                for r in map(json.loads, gzip.decompress(zf.read(n)).splitlines())}
        acts: dict[int, list[dict]] = {}
        for n in zf.namelist():
            if n.startswith(f"{folder}/activations/"):
                for r in map(json.loads, gzip.decompress(zf.read(n)).splitlines()):
                    acts.setdefault(r["index"], []).append(r)
    with FakeNeuronpedia(api_key="k") as server:
        upload_export(out, "k", studio.sessions, host=server.url)
        assert server.models["tiny-gpt2"]["layers"] == 6  # the model's real layer count
        assert server.ignored == set()
        assert set(server.neurons) == {("tiny-gpt2", meta["neuronpedia"]["source_id"], i) for i in rows}
        for (_, _, index), neuron in server.neurons.items():
            row = rows[index]
            for key in ("frac_nonzero", "pos_str", "pos_values", "neg_str", "neg_values", "maxActApprox"):
                assert neuron[key] == row[key], key
            def band(a: dict) -> tuple:
                top = a["binMin"] is None or a["binMin"] == -1  # the API leaves the top group's bin empty
                return (-1.0, -1.0, -1.0) if top else (a["binMin"], a["binMax"], a["binContains"])

            assert sorted((band(a), a["values"]) for a in neuron["activations"]) == sorted(
                (band(a), a["values"]) for a in acts[index])
            assert any(a["binContains"] is not None for a in neuron["activations"])  # the quantile bands
            assert row["neuron_alignment_indices"] and row["topkCosSimIndices"]  # in the rows, not in the API
    assert {"neuron_alignment_*", "correlated_neurons_*", "correlated_features_*", "topkCosSimIndices/Values",
            "freq_hist_data_bar_*"} <= set(NOT_TAKEN_BY_API)


def test_fake_server_enforces_limits() -> None:
    import urllib.request

    with FakeNeuronpedia(api_key="k") as server:
        def post(route: str, body: dict) -> int:
            req = urllib.request.Request(server.url + route, data=json.dumps(body).encode(), method="POST",
                                         headers={"x-api-key": "k", "content-type": "application/json"})
            try:
                return urllib.request.urlopen(req).status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert post("/api/model/new", {"id": "Bad_Id", "layers": 2}) == 400
        assert post("/api/model/new", {"id": "tiny-model", "layers": 2}) == 200
        assert post("/api/source-set/new", {"modelId": "tiny-model", "name": "a--b"}) == 400
        assert post("/api/source-set/new", {"modelId": "tiny-model", "name": "res-x"}) == 200
        act = {"tokens": ["a"], "values": [1.0]}
        base = {"modelId": "tiny-model", "source": "1-res-x"}
        assert post("/api/feature/upload-batch", {**base, "features": [{"index": i, "activations": [act]}
                                                                       for i in range(129)]}) == 400
        assert post("/api/feature/upload-batch", {**base, "features": [
            {"index": 0, "activations": [{"tokens": ["a", "b"], "values": [1.0]}]}]}) == 400
        assert post("/api/feature/upload-batch", {**base, "features": [
            {"index": 0, "activations": [act], "topLogits": [{"token": "x", "value": 1}] * 21}]}) == 400
        assert post("/api/feature/upload-batch", {**base, "features": [
            {"index": 0, "activations": [act], "explanations": [{"text": "x" * 513}]}]}) == 400
        assert post("/api/feature/upload-batch", {**base, "features": [{"index": 0, "activations": [act]}]}) == 200
