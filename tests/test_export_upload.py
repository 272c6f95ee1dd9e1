"""Upload through the Neuronpedia API against a local server with the real routes and limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.fake_neuronpedia import FakeNeuronpedia
from sae_factories import make_sae
from test_export_pipeline import run, tiny_inputs

from mistudio.errors import HubAuthError, NeuronpediaUploadError
from mistudio.export.neuronpedia.upload import upload_export


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
