"""The export job through the real JobRunner and database (stages, export record, cancel, pause/resume), the
REST routes (estimate, start, status, download, validate, labels import, exports list) and the CLI commands,
all over a real extraction of a tiny model."""

from __future__ import annotations

import gzip
import io
import json
import time
import zipfile
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mistudio.catalog.service import register_sae_from_path
from mistudio.db.models import ExportRecord, SAERecord
from mistudio.demo import random_sae
from mistudio.export import jobs as export_jobs
from mistudio.export.config import make_config
from mistudio.export.pipeline import STAGES
from mistudio.export.service import start_export
from mistudio.export.validate.validator import validate_export
from mistudio.extraction.service import extract
from mistudio.saes.formats import write_saelens
from mistudio.studio import Studio
from mistudio.testing.tiny_models import build_tiny_model

D_SAE = 48
EXTRACT = {"n_tokens": 2048, "context_size": 32, "top_k": 20}
CFG = {"model_id": "tiny-gpt2", "batch_size": 16}


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("assets")
    model = build_tiny_model("gpt2", root / "model")
    sae = random_sae(64, D_SAE, "blocks.1.hook_resid_pre", model_name=str(model), context_size=32)
    with torch.no_grad():
        sae.b_enc[3] = -1e9  # a dead feature
    return model, write_saelens(sae, root / "sae")


def _ready(studio: Studio, assets: tuple[Path, Path]) -> str:
    model, sae_path = assets
    sae_id = register_sae_from_path(studio, sae_path, name="tiny", source="trained").id
    extract(studio, sae_id, str(model), "builtin:corpus", **EXTRACT)
    return sae_id


def _run(studio: Studio, sae_id: str, **cfg: object) -> tuple[str, dict]:
    started = start_export(studio, sae_id, make_config(**{**CFG, **cfg}))
    return started.job_id, studio.runner.run_inline(started.job_id)


def test_export_job_fills_its_record(any_db_studio: Studio, assets: tuple[Path, Path]) -> None:
    studio = any_db_studio
    sae_id = _ready(studio, assets)
    events: list[str] = []
    started = start_export(studio, sae_id, make_config(**CFG))
    state = studio.runner.run_inline(started.job_id, listener=lambda e: events.append(e["stage"]))
    assert state.status == "completed", state
    assert [s.name for s in state.stages] == STAGES
    assert all(s.status == "completed" for s in state.stages)
    seen = [s for n, s in enumerate(events) if s and (n == 0 or events[n - 1] != s)]
    assert seen == STAGES  # every stage, in order, each once
    with studio.sessions() as s:
        rec = s.get(ExportRecord, started.export_id)
        assert rec.status == "completed" and rec.job_id == started.job_id and rec.finished_at is not None
        assert rec.output_path == f"exports/{started.job_id}.zip"  # relative to MISTUDIO_HOME
        path = studio.settings.absolute(rec.output_path)
        assert rec.file_size_bytes == path.stat().st_size and rec.feature_count == D_SAE
        assert set(rec.timings) == set(STAGES) and all(v >= 0 for v in rec.timings.values())
    report = validate_export(path)
    assert report.ok, report.to_text()
    assert state.result["n_skipped"] >= 1  # the dead feature is not in a Neuronpedia batch


def _interrupt_after_first_batch(monkeypatch: pytest.MonkeyPatch, studio: Studio, action: str) -> None:
    """Make the user press cancel/pause while the export writes its first batches."""
    real = export_jobs.build_export

    def build(inputs, cfg, out, work, callbacks):  # noqa: ANN001, ANN202
        progress = callbacks.progress

        def on_progress(fraction: float, message: str | None) -> None:
            progress(fraction, message)
            if message and message.startswith("features:") and fraction < 1:
                job_id = Path(work).name.removeprefix("export-")
                getattr(studio.runner, action)(job_id)
                time.sleep(0.3)  # the job polls its flags at most every 0.25 s

        callbacks.progress = on_progress
        return real(inputs, cfg, out, work, callbacks)

    monkeypatch.setattr(export_jobs, "build_export", build)


def test_cancel_leaves_no_archive_and_pause_resumes_to_same_bytes(studio: Studio, assets: tuple[Path, Path],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    sae_id = _ready(studio, assets)
    _, ref = _run(studio, sae_id)
    reference = studio.settings.absolute(ref.result["output_path"]).read_bytes()

    with monkeypatch.context() as m:
        _interrupt_after_first_batch(m, studio, "cancel")
        job_id, state = _run(studio, sae_id)
    assert state.status == "cancelled"
    assert not list(studio.settings.exports_dir.glob(f"*{job_id}*"))  # nothing that looks finished
    with studio.sessions() as s:
        assert s.get(ExportRecord, state.params["export_id"]).status == "cancelled"

    with monkeypatch.context() as m:
        _interrupt_after_first_batch(m, studio, "pause")
        job_id, state = _run(studio, sae_id)
    assert state.status == "paused"
    assert not (studio.settings.exports_dir / f"{job_id}.zip").exists()
    studio.runner.resume(job_id)
    state = studio.runner.run_inline(job_id)
    assert state.status == "completed", state
    assert studio.settings.absolute(state.result["output_path"]).read_bytes() == reference


@pytest.fixture()
def client(studio: Studio, assets: tuple[Path, Path]):  # noqa: ANN201
    from mistudio.api.app import create_app

    sae_id = _ready(studio, assets)
    with TestClient(create_app(studio, start_worker=False)) as c:
        yield c, studio, sae_id


def test_rest_estimate_export_status_download_validate(client, tmp_path: Path) -> None:  # noqa: ANN001
    c, studio, sae_id = client
    base = f"/api/v1/saes/{sae_id}"
    assert c.post(f"{base}/export/validate", json={}).status_code == 422  # nothing exported yet
    est = c.post(f"{base}/export/estimate", json={"config": CFG}).json()
    assert est["n_features"] == D_SAE and est["missing"] == [] and est["size_bytes"] > 0 and est["n_dead"] >= 1

    res = c.post(f"{base}/export/neuronpedia", json={"config": {**CFG, "format": "neuronpedia"}})
    assert res.status_code == 202, res.text
    job_id = res.json()["job_id"]
    assert c.get(f"{base}/export/download/{job_id}").status_code == 422  # not finished yet
    studio.runner.run_inline(job_id)
    status = c.get(f"{base}/export/status/{job_id}").json()
    assert status["job"]["status"] == "completed" and status["export"]["feature_count"] == D_SAE
    assert status["export"]["output_path"] == f"exports/{job_id}.zip"

    with c.stream("GET", f"{base}/export/download/{job_id}") as res:
        assert res.status_code == 200 and res.headers["content-type"] == "application/zip"
        (tmp_path / "dl.zip").write_bytes(b"".join(res.iter_bytes()))
    assert validate_export(tmp_path / "dl.zip").ok
    with zipfile.ZipFile(tmp_path / "dl.zip") as zf:
        names = zf.namelist()
        assert any(n.startswith("neuronpedia/exports/") for n in names) and not any(n.startswith("saelens/") for n in names)

    report = c.post(f"{base}/export/validate", json={}).json()
    assert report["ok"] and report["n_features"] == D_SAE and "OK" in report["text"]
    listed = c.get("/api/v1/exports", params={"sae_id": sae_id}).json()
    assert listed["total"] == 1 and listed["items"][0]["job_id"] == job_id
    assert c.get(f"{base}/export/status/nope").status_code == 404
    assert c.get(f"/api/v1/saes/nope/export/status/{job_id}").status_code == 404
    bad = c.post(f"{base}/export/neuronpedia", json={"config": {"model_id": "Not Valid"}})
    assert bad.status_code == 422


def test_rest_labels_import_reaches_the_export(client) -> None:  # noqa: ANN001
    c, studio, sae_id = client
    csv = "feature_index,description,method,score,category\n1,dates and times,manual,0.5,time\n1,clock words,auto,,\n"
    res = c.post(f"/api/v1/saes/{sae_id}/labels/import", files={"file": ("labels.csv", io.BytesIO(csv.encode()))})
    assert res.status_code == 200, res.text
    assert res.json()["imported"] == 2
    bad = c.post(f"/api/v1/saes/{sae_id}/labels/import", files={"file": ("labels.txt", io.BytesIO(b"x"))})
    assert bad.status_code == 422
    job_id = c.post(f"/api/v1/saes/{sae_id}/export/neuronpedia",
                    json={"config": {**CFG, "selection": {"mode": "labeled"}}}).json()["job_id"]
    state = studio.runner.run_inline(job_id)
    assert state.result["feature_count"] == 1
    with zipfile.ZipFile(studio.settings.absolute(state.result["output_path"])) as zf:
        doc = json.loads(zf.read("explanations/explanations.json"))
    assert [e["description"] for e in doc["explanations"][0]["explanations"]] == ["dates and times", "clock words"]


def test_rest_ui_labels_reach_the_export(client) -> None:  # noqa: ANN001
    """A label saved as the UI saves it (PUT …/label) is exported as an explanation: in explanations.json and in
    the Neuronpedia explanation rows."""
    c, studio, sae_id = client
    base = f"/api/v1/saes/{sae_id}"
    live, other = [f["feature_index"] for f in c.get(f"{base}/features", params={"dead": False}).json()["items"][:2]]
    res = c.put(f"{base}/features/{live}/label", json={"label": "opening quotes", "category": "punctuation"})
    assert res.status_code == 200, res.text
    c.put(f"{base}/features/{other}/label", json={"label": "numbers"})
    c.put(f"{base}/features/{other}/label", json={"label": None})  # cleared in the UI: not exported
    res = c.post(f"{base}/export/neuronpedia", json={"config": {**CFG, "selection": {"mode": "list",
                                                                                      "indices": [live, other]}}})
    assert res.status_code == 202, res.text
    state = studio.runner.run_inline(res.json()["job_id"])
    assert state.status == "completed", state
    with zipfile.ZipFile(studio.settings.absolute(state.result["output_path"])) as zf:
        doc = json.loads(zf.read("explanations/explanations.json"))
        rows = [json.loads(line) for n in zf.namelist() if "/explanations/batch-" in n
                for line in gzip.decompress(zf.read(n)).splitlines()]
    assert doc["explanations"] == [{"feature_index": live, "explanations": [
        {"description": "opening quotes", "method": "manual", "model": None, "score": None, "source": "typed",
         "prompt_version": None, "scores": [], "created_at": None}]}]
    assert [(r["index"], r["description"], r["notes"]) for r in rows] == [
        (str(live), "opening quotes", "method=manual; source=typed")]


def test_local_model_is_refused_before_a_job_starts(client) -> None:  # noqa: ANN001
    c, studio, sae_id = client
    est = c.post(f"/api/v1/saes/{sae_id}/export/estimate", json={"config": {"batch_size": 16}}).json()
    assert len(est["problems"]) == 1 and "--model-id" in est["problems"][0]
    assert c.post(f"/api/v1/saes/{sae_id}/export/estimate", json={"config": CFG}).json()["problems"] == []
    res = c.post(f"/api/v1/saes/{sae_id}/export/neuronpedia", json={"config": {"batch_size": 16}})
    assert res.status_code == 422 and "--model-id" in res.json()["error"]["message"]
    assert [j.type for j in studio.runner.list()] == ["extraction"]  # no export job was queued


def test_a_store_without_neuronpedia_data_is_refused_until_extracted_again(studio: Studio,
                                                                          assets: tuple[Path, Path]) -> None:
    from mistudio.errors import ExportValidationError

    model, sae_path = assets
    sae_id = register_sae_from_path(studio, sae_path, name="tiny", source="trained").id
    extract(studio, sae_id, str(model), "builtin:corpus", neuronpedia=False, **EXTRACT)
    with pytest.raises(ExportValidationError, match=rf"run `mistudio extract {sae_id} …` again"):
        start_export(studio, sae_id, make_config(**CFG))
    start_export(studio, sae_id, make_config(**CFG, format="saelens"))  # the SAELens folder needs none of it
    extract(studio, sae_id, str(model), "builtin:corpus", **EXTRACT)  # adds only the Neuronpedia pass
    job_id, state = _run(studio, sae_id)
    assert state.status == "completed", state


def test_cli_export_validate_fix_and_labels(studio: Studio, assets: tuple[Path, Path], tmp_path: Path) -> None:
    from mistudio.cli.main import app

    sae_id = _ready(studio, assets)
    runner = CliRunner()
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([{"feature_index": 2, "description": "punctuation"}]))
    res = runner.invoke(app, ["labels", "import", sae_id, str(labels), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["imported"] == 1

    out = tmp_path / "out.zip"
    res = runner.invoke(app, ["export", "neuronpedia", sae_id, "--out", str(out), "--features", "0-19", "--json"])
    assert res.exit_code != 0 and "--model-id" in res.output  # the model is a local folder: refused up front
    res = runner.invoke(app, ["export", "neuronpedia", sae_id, "--out", str(out), "--model-id", "acme/tiny-gpt2",
                              "--features", "0-19", "--saedashboard-batches", "--np-logit-lens", "folded", "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["neuronpedia"]["model_id"] == "tiny-gpt2"  # derived from the hub id
    with zipfile.ZipFile(out) as zf:
        meta = json.loads(zf.read("metadata.json"))
        assert meta["model_name"] == "acme/tiny-gpt2" and meta["export"]["np_logit_lens"] == "folded"
        assert json.loads(zf.read("saelens/cfg.json"))["metadata"]["model_name"] == "acme/tiny-gpt2"
        assert (meta["n_layers"], meta["d_mlp"]) == (2, 256)  # recorded by the extraction
    assert result["feature_count"] == 20 and result["archive"] == str(out) and out.exists()
    stored = studio.settings.absolute(result["output_path"])
    assert stored.exists() and out.stat().st_size == stored.stat().st_size
    if out.stat().st_dev == stored.stat().st_dev:
        assert out.samefile(stored)  # a hard link, not a second copy
    with zipfile.ZipFile(out) as zf:
        assert "neuronpedia/batch-0.json" in zf.namelist()

    res = runner.invoke(app, ["export", "validate", str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["ok"]
    with zipfile.ZipFile(out) as zf:  # break a checksum and a max value, then let --fix repair them
        files = {n: zf.read(n) for n in zf.namelist()}
    files["README.md"] += b"edited\n"
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    res = runner.invoke(app, ["export", "validate", str(broken), "--json"])
    assert res.exit_code == 1 and "checksum_mismatch" in {i["code"] for i in json.loads(res.stdout)["issues"]}
    res = runner.invoke(app, ["export", "validate", str(broken), "--fix", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["after"]["ok"] and validate_export(broken).ok


def test_rest_incremental_export_builds_on_a_finished_one(client) -> None:  # noqa: ANN001
    c, studio, sae_id = client
    base = f"/api/v1/saes/{sae_id}"
    half = {**CFG, "format": "neuronpedia", "selection": {"mode": "range", "start": 0, "stop": D_SAE // 2}}
    first = c.post(f"{base}/export/neuronpedia", json={"config": half}).json()
    studio.runner.run_inline(first["job_id"])
    rest = {**half, "selection": {"mode": "range", "start": D_SAE // 2, "stop": D_SAE}}
    res = c.post(f"{base}/export/neuronpedia", json={"config": rest, "base_export_id": first["export_id"]})
    assert res.status_code == 202, res.text
    state = studio.runner.run_inline(res.json()["job_id"])
    assert state.status == "completed", state
    assert state.result["feature_count"] == D_SAE and state.result["n_reused"] == D_SAE // 2
    status = c.get(f"{base}/export/status/{res.json()['job_id']}").json()
    assert status["export"]["base_export_id"] == first["export_id"]
    assert validate_export(studio.settings.absolute(status["export"]["output_path"])).ok

    assert c.post(f"{base}/export/neuronpedia", json={"config": rest, "base_export_id": "nope"}).status_code == 404
    server_path = c.post(f"{base}/export/neuronpedia", json={"config": {**rest, "base_export": "/etc/passwd"}})
    assert server_path.status_code == 422 and "base_export_id" in server_path.json()["error"]["message"]


def test_bad_selections_are_refused_before_a_job_starts(client) -> None:  # noqa: ANN001
    c, studio, sae_id = client
    url = f"/api/v1/saes/{sae_id}/export/neuronpedia"
    for selection, words in (({"mode": "range", "start": 50, "stop": 10}, "empty"),
                             ({"mode": "list", "indices": [1, D_SAE + 5]}, "out of range"),
                             ({"mode": "range", "start": 0, "stop": D_SAE + 1}, "beyond")):
        res = c.post(url, json={"config": {**CFG, "selection": selection}})
        assert res.status_code == 422 and words in res.json()["error"]["message"], res.text
    assert c.get("/api/v1/jobs", params={"type": "export"}).json()["items"] == []  # no job was queued
    with studio.sessions() as s:
        assert s.query(ExportRecord).count() == 0


def test_deleting_an_sae_removes_its_files_exports_and_work_folders(studio: Studio, assets: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    from mistudio.catalog.service import delete_sae
    from mistudio.cli.main import app

    sae_id = _ready(studio, assets)
    model, _ = assets
    second = write_saelens(random_sae(64, D_SAE, "blocks.1.hook_resid_pre", model_name=str(model), context_size=32,
                                      seed=1), tmp_path / "second")
    other = register_sae_from_path(studio, second, name="second", source="trained").id
    assert other != sae_id
    extract(studio, other, str(model), "builtin:corpus", **EXTRACT)
    job_id, state = _run(studio, sae_id)
    archive = studio.settings.absolute(state.result["output_path"])
    _, kept = _run(studio, other)
    stale = studio.settings.tmp_dir / f"export-{job_id}"
    stale.mkdir(parents=True)  # as left by an earlier crash
    (stale / "x").write_bytes(b"x" * 100)
    with studio.sessions() as s:
        weights = studio.settings.absolute(s.get(SAERecord, sae_id).local_path)
    features = studio.settings.features_dir / sae_id
    assert weights.exists() and features.exists() and archive.exists()

    info = json.loads(CliRunner().invoke(app, ["info", "--json"]).stdout)
    mine = next(u for u in info["saes"] if u["sae_id"] == sae_id)
    assert mine["exports_bytes"] == archive.stat().st_size and mine["work_bytes"] == 100
    assert mine["features_bytes"] > 0 and mine["weights_bytes"] > 0

    delete_sae(studio, sae_id)
    assert not weights.exists() and not features.exists() and not archive.exists() and not stale.exists()
    assert studio.settings.absolute(kept.result["output_path"]).exists()  # the other SAE's export stays
    with studio.sessions() as s:
        assert s.query(ExportRecord).filter_by(sae_id=sae_id).count() == 0


def test_cli_exports_list_delete_and_gc(studio: Studio, assets: tuple[Path, Path]) -> None:
    from mistudio.cli.main import app
    from mistudio.db.models import Job

    runner = CliRunner()
    sae_id = _ready(studio, assets)
    job_id, state = _run(studio, sae_id)
    listed = json.loads(runner.invoke(app, ["exports", "list", "--json"]).stdout)
    assert [e["job_id"] for e in listed["items"]] == [job_id] and listed["items"][0]["status"] == "completed"
    table = runner.invoke(app, ["exports", "list"], terminal_width=200)
    assert table.exit_code == 0 and state.params["export_id"][:8] in table.output

    tmp = studio.settings.tmp_dir
    finished = tmp / f"export-{job_id}"  # a completed job's leftover work folder: garbage
    vanished = tmp / "export-00000000-gone"  # a job that no longer exists: garbage
    interrupted_job = studio.runner.create("export", {"export_id": "x", "sae_id": sae_id, "config": {}}, sae_id)
    with studio.sessions() as s, s.begin():
        s.get(Job, interrupted_job).status = "interrupted"
    resumable = tmp / f"export-{interrupted_job}"  # still needed to resume: kept
    fresh = tmp / "tmpabc123"  # a transient folder younger than an hour: kept
    orphan_zip = studio.settings.exports_dir / "not-recorded.zip"
    for folder in (finished, vanished, resumable, fresh):
        folder.mkdir(parents=True)
        (folder / "f").write_bytes(b"x" * 10)
    orphan_zip.write_bytes(b"zip")
    dry = json.loads(runner.invoke(app, ["gc", "--dry-run", "--json"]).stdout)
    assert {g["path"] for g in dry["removed"]} == {f"tmp/{finished.name}", f"tmp/{vanished.name}",
                                                    "exports/not-recorded.zip"}
    assert finished.exists() and dry["dry_run"]
    done = runner.invoke(app, ["gc"])
    assert done.exit_code == 0 and "freed" in done.output
    assert not finished.exists() and not vanished.exists() and not orphan_zip.exists()
    assert resumable.exists() and fresh.exists() and studio.settings.absolute(state.result["output_path"]).exists()

    deleted = runner.invoke(app, ["exports", "delete", state.params["export_id"][:8], "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert not studio.settings.absolute(state.result["output_path"]).exists()
    assert json.loads(runner.invoke(app, ["exports", "list", "--json"]).stdout)["total"] == 0
    missing = runner.invoke(app, ["exports", "delete", "nope", "--yes"])
    assert missing.exit_code == 1 and "not found" in missing.output


def test_rest_lists_and_deletes_exports(client) -> None:  # noqa: ANN001
    c, studio, sae_id = client
    job_id = c.post(f"/api/v1/saes/{sae_id}/export/neuronpedia", json={"config": CFG}).json()["job_id"]
    studio.runner.run_inline(job_id)
    item = c.get("/api/v1/exports").json()["items"][0]
    archive = studio.settings.absolute(item["output_path"])
    assert archive.exists()
    assert c.delete(f"/api/v1/exports/{item['id']}").status_code == 204
    assert not archive.exists() and c.get("/api/v1/exports").json()["total"] == 0
    assert c.delete(f"/api/v1/exports/{item['id']}").status_code == 404


@pytest.mark.parametrize("overrides", [{}, {"format": "neuronpedia"}, {"format": "saelens"},
                                       {"selection": {"mode": "range", "start": 0, "stop": 30}}])
def test_the_estimate_is_within_30_percent_of_the_real_archive(studio: Studio, assets: tuple[Path, Path],
                                                                overrides: dict) -> None:
    from mistudio.export.service import estimate, gather_inputs

    sae_id = _ready(studio, assets)
    cfg = make_config(**{**CFG, **overrides})
    predicted = estimate(gather_inputs(studio, sae_id, load_weights=False), cfg)
    _, state = _run(studio, sae_id, **overrides)
    real = state.result["file_size_bytes"]
    assert predicted.n_features == state.result["feature_count"]
    assert 0.7 * real <= predicted.size_bytes <= 1.3 * real, (predicted.size_bytes, real)
    assert predicted.seconds > 0
