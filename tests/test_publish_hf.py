"""Publishing an SAE to the HuggingFace Hub (`export.hf_publish`) against the fake hub's commit API, read back
with SAELens's own loaders (`SAE.from_pretrained`, `SAE.load_from_disk` after `snapshot_download`) and
huggingface_hub's own parsers (model card, file listing); re-runs, partial changes, an interrupted commit, auth
errors, the CLI and the REST route."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from fakes.fake_hub import WRITE_TOKEN, FakeHub
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mistudio.demo import random_sae
from mistudio.errors import HubAuthError, HubUnreachableError, InvalidInputError
from mistudio.export.hf_publish import PublishFacts, PublishRequest, publish_sae
from mistudio.saes.model import SAE
from mistudio.settings import reset_settings
from mistudio.studio import Studio

REPO = "alice/tiny-saes"
HOOK = "blocks.1.hook_resid_pre"
SAE_FILES = [f"{HOOK}/README.md", f"{HOOK}/cfg.json", f"{HOOK}/sae_weights.safetensors",
             f"{HOOK}/sparsity.safetensors"]
ALL_FILES = sorted(["README.md", "pretrained_saes.yaml", *SAE_FILES])


def _sae(seed: int = 0) -> SAE:
    return random_sae(16, 64, HOOK, model_name="gpt2", seed=seed, context_size=32)


def _frequency(d_sae: int = 64) -> np.ndarray:
    freq = np.random.default_rng(0).uniform(0.0, 0.2, d_sae)
    freq[5] = 0.0  # a dead feature
    return freq


def _facts() -> PublishFacts:
    return PublishFacts(l0=12.5, explained_variance=0.8125, dead_fraction=1 / 64, n_dead=1,
                        measured_on="4,096 tokens of `builtin:corpus`")


def _publish(sae: SAE, **request: Any) -> Any:
    return publish_sae(sae, PublishRequest(**{"repo_id": REPO, "token": WRITE_TOKEN, **request}),
                       frequency=_frequency(sae.cfg.d_sae), facts=_facts())


def _sae_lens() -> Any:
    from sae_lens import SAE as SAELensSAE  # type: ignore[import-untyped, unused-ignore]

    return SAELensSAE


def _uploads(hub: FakeHub) -> list[str]:
    return [r.path for r in hub.requests if r.method == "PUT"]


def _commits(hub: FakeHub) -> list[int]:
    return [r.status for r in hub.requests if r.method == "POST" and "/commit/" in r.path]


def test_published_sae_loads_back_with_saelens_from_pretrained(writable_hub: FakeHub,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    sae = _sae()
    result = _publish(sae, private=True)
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)  # the repo is private: SAELens reads it with the user's token
    assert (result.repo_id, result.folder, result.revision, result.committed) == (REPO, HOOK, "main", True)
    assert result.uploaded == ALL_FILES and result.unchanged == []
    assert result.commit_oid == writable_hub.commit_sha(REPO)
    assert result.load_snippet == f'from sae_lens import SAE\n\nsae = SAE.from_pretrained("{REPO}", "{HOOK}")\n'

    with warnings.catch_warnings():  # SAELens warns that the repo is not one of its registry's releases
        warnings.simplefilter("ignore")
        lens, cfg_dict, log_sparsity = _sae_lens().from_pretrained_with_cfg_and_sparsity(REPO, HOOK)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(lens, name).detach(), getattr(sae, name).detach()), name
    expected_sparsity = np.log10(_frequency() + 1e-10).astype(np.float32)
    assert log_sparsity is not None and np.array_equal(log_sparsity.numpy(), expected_sparsity)
    assert (lens.cfg.metadata.model_name, lens.cfg.metadata.hook_name, cfg_dict["d_sae"]) == ("gpt2", HOOK, 64)
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(lens.encode(x), sae.encode(x), atol=1e-6)

    # a private repo: reading needs the token too
    from huggingface_hub import HfApi, ModelCard, hf_hub_download

    api = HfApi(endpoint=writable_hub.endpoint, token=WRITE_TOKEN)
    assert sorted(api.list_repo_files(REPO)) == ALL_FILES
    assert api.model_info(REPO).private is True
    card = ModelCard.load(REPO, token=WRITE_TOKEN)
    assert card.data.library_name == "saelens" and "saelens" in card.data.tags
    for text in (HOOK, "| L0 | 12.50 (measured on 4,096 tokens of `builtin:corpus`) |", "| width (d_sae) | 64 |",
                 "| dead features | 1.56% (1 of 64)", "| explained variance | 0.8125", "| architecture | standard |",
                 result.load_snippet):
        assert text in card.text, text
    registry_file = Path(hf_hub_download(REPO, "pretrained_saes.yaml", token=WRITE_TOKEN))
    assert yaml.safe_load(registry_file.read_text()) == {"tiny-saes": {
        "conversion_func": None, "model": "gpt2", "repo_id": REPO,
        "saes": [{"id": HOOK, "path": HOOK, "l0": 12.5, "variance_explained": 0.8125}]}}

    # the entry, read by SAELens's own registry parser in place of its packaged one, loads the SAE as a release
    from sae_lens.loading import pretrained_saes_directory as directory  # type: ignore[import-untyped, unused-ignore]

    packaged = directory.files
    directory.files = lambda package: registry_file.parent
    directory.get_pretrained_saes_directory.cache_clear()
    try:
        assert directory.get_repo_id_and_folder_name("tiny-saes", HOOK) == (REPO, HOOK)
        released = _sae_lens().from_pretrained("tiny-saes", HOOK)
    finally:
        directory.files = packaged
        directory.get_pretrained_saes_directory.cache_clear()
    assert torch.equal(released.W_enc.detach(), sae.W_enc.detach())


def test_rerun_uploads_nothing_and_a_change_uploads_only_the_changed_files(writable_hub: FakeHub) -> None:
    sae = _sae()
    first = _publish(sae)
    writable_hub.clear_log()
    again = _publish(sae)
    assert (again.committed, again.uploaded, again.unchanged) == (False, [], ALL_FILES)
    assert again.commit_oid == first.commit_oid
    assert _uploads(writable_hub) == [] and _commits(writable_hub) == []

    with torch.no_grad():
        sae.b_dec += 1.0
    writable_hub.clear_log()
    changed = _publish(sae)
    assert changed.committed and changed.uploaded == [f"{HOOK}/sae_weights.safetensors"]
    assert len(_uploads(writable_hub)) == 1 and _commits(writable_hub) == [200]
    assert changed.commit_oid == writable_hub.commit_sha(REPO) != first.commit_oid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lens = _sae_lens().from_pretrained(REPO, HOOK, force_download=True)
    assert torch.equal(lens.b_dec.detach(), sae.b_dec.detach())

    # a second SAE in its own folder joins the repo's registry entry and card
    other = _publish(_sae(seed=1), folder="layer_1/other")
    assert sorted(other.uploaded) == ["README.md", "layer_1/other/README.md", "layer_1/other/cfg.json",
                                      "layer_1/other/sae_weights.safetensors", "layer_1/other/sparsity.safetensors",
                                      "pretrained_saes.yaml"]
    registry = yaml.safe_load(writable_hub.file_path(REPO, "pretrained_saes.yaml").read_text())
    assert [s["id"] for s in registry["tiny-saes"]["saes"]] == [HOOK, "layer_1/other"]


def test_an_interrupted_publish_resumes_without_sending_the_blobs_again(writable_hub: FakeHub) -> None:
    sae = _sae()
    writable_hub.fail_next_commits(1)
    with pytest.raises(HubUnreachableError, match="run the same publish again"):
        _publish(sae)
    assert len(_uploads(writable_hub)) == 2  # the two safetensors files reached the LFS store
    assert _commits(writable_hub) == [500]
    writable_hub.clear_log()
    result = _publish(sae)
    assert result.committed and result.uploaded == ALL_FILES
    assert _uploads(writable_hub) == []  # the LFS batch answered: already there
    assert [r.status for r in writable_hub.requests if r.path.endswith("/info/lfs/objects/batch")] == [200, 200]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lens = _sae_lens().from_pretrained(REPO, HOOK)
    assert torch.equal(lens.W_dec.detach(), sae.W_dec.detach())


def test_a_branch_loads_with_snapshot_download_and_load_from_disk(writable_hub: FakeHub) -> None:
    from huggingface_hub import snapshot_download

    sae = _sae()
    result = _publish(sae, revision="dev", folder="tiny")
    assert result.revision == "dev" and "snapshot_download" in result.load_snippet
    assert writable_hub.commit_sha(REPO, "dev") == result.commit_oid
    root = snapshot_download(REPO, revision="dev", allow_patterns=["tiny/*"], token=WRITE_TOKEN)
    lens = _sae_lens().load_from_disk(f"{root}/tiny")
    assert torch.equal(lens.W_enc.detach(), sae.W_enc.detach())


def test_refusals_name_what_to_do(writable_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(HubAuthError, match="write access"):
        _publish(_sae(), token="hf_not_a_valid_token")
    with pytest.raises(HubAuthError, match="needs a HuggingFace token"):
        _publish(_sae(), token=None)
    with pytest.raises(InvalidInputError, match="OWNER/NAME"):
        _publish(_sae(), repo_id="just-a-name")
    with pytest.raises(InvalidInputError, match="--model-id"):
        publish_sae(random_sae(16, 64, HOOK, model_name=str(writable_hub.state.root)),
                    PublishRequest(repo_id=REPO, token=WRITE_TOKEN))
    assert [r for r in writable_hub.requests if r.method in ("POST", "PUT") and r.status == 200] == []
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    reset_settings()
    with pytest.raises(HubUnreachableError, match="cannot reach the Hub at http://127.0.0.1:9"):
        _publish(_sae())


def test_cli_json_and_rest_route_publish_a_catalogued_sae(writable_hub: FakeHub, studio: Studio,
                                                         tmp_path: Path) -> None:
    from mistudio.api.app import create_app
    from mistudio.catalog.service import register_sae_from_path
    from mistudio.cli.main import app
    from mistudio.extraction.service import extract
    from mistudio.saes.formats import write_saelens
    from mistudio.testing.tiny_models import build_tiny_model

    model = build_tiny_model("gpt2", tmp_path / "model")
    sae = random_sae(64, 48, HOOK, model_name=str(model), context_size=32)
    sae_id = register_sae_from_path(studio, write_saelens(sae, tmp_path / "sae"), name="tiny", source="trained").id
    extract(studio, sae_id, str(model), "builtin:corpus", n_tokens=1024, context_size=32, top_k=8)

    runner = CliRunner()
    base = ["publish", "hf", sae_id, "--repo", REPO, "--token", WRITE_TOKEN]
    refused = runner.invoke(app, [*base, "--json"])
    assert refused.exit_code == 1 and "--model-id" in refused.output
    res = runner.invoke(app, [*base, "--model-id", "tiny-gpt2", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["uploaded"] == ALL_FILES and out["committed"] and out["repo_id"] == REPO
    cfg = json.loads(writable_hub.file_path(REPO, f"{HOOK}/cfg.json").read_text())
    assert cfg["metadata"]["model_name"] == "tiny-gpt2" and str(tmp_path) not in json.dumps(cfg)
    card = writable_hub.file_path(REPO, "README.md").read_text()
    assert "tokens of `builtin:corpus`)" in card and str(tmp_path) not in card
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, _, log_sparsity = _sae_lens().from_pretrained_with_cfg_and_sparsity(REPO, HOOK)
    from mistudio.extraction.service import get_store

    frequency = get_store(studio, sae_id)[1].summary_arrays()["frequency"]
    assert np.array_equal(log_sparsity.numpy(), np.log10(frequency + 1e-10).astype(np.float32))

    with TestClient(create_app(studio, start_worker=False)) as client:
        url = f"/api/v1/saes/{sae_id}/publish/hf"
        assert client.post(url, json={"repo_id": "no-owner"}).status_code == 422
        started = client.post(url, json={"repo_id": REPO, "token": WRITE_TOKEN, "model_id": "tiny-gpt2"})
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]
        assert WRITE_TOKEN not in json.dumps(client.get(f"/api/v1/jobs/{job_id}").json())
        studio.runner.run_inline(job_id)
        status = client.get(f"{url}/{job_id}").json()
        assert status["job"]["status"] == "completed"
        assert status["result"]["committed"] is False and status["result"]["unchanged"] == ALL_FILES
        assert client.get(f"{url}/not-a-job").status_code == 404
