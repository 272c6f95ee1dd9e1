"""The export pipeline end to end on real tiny data: archive layout, determinism, resume, SAELens round trip."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from export_sources import InMemoryNeuronpedia, InMemorySource
from sae_factories import make_sae

from mistudio.export.archive.jsonio import render_tokens
from mistudio.export.config import make_config
from mistudio.export.neuronpedia.ids import pseudo_cuid
from mistudio.export.pipeline import ExportCallbacks, ExportInputs, SAEInfo, build_export
from mistudio.saes.model import SAE
from mistudio.testing.tiny_models import build_tokenizer

N_WINDOWS, CTX = 48, 16


def tiny_inputs(sae: SAE, seed: int = 0, n_windows: int = N_WINDOWS) -> ExportInputs:
    """A real in-memory source: the SAE encodes random inputs over a tiny tokenizer's tokens."""
    tok = build_tokenizer(vocab_size=300)
    vocab = [tok.decode([i]) for i in range(len(tok))]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_windows, CTX, sae.cfg.d_in, generator=gen)
    with torch.no_grad():
        acts = sae.encode(x).numpy()
    token_ids = torch.randint(0, len(vocab), (n_windows, CTX), generator=gen).numpy()
    w_u = torch.randn(sae.cfg.d_in, len(vocab), generator=gen)
    logit_weights = (sae.W_dec.detach() @ w_u).numpy()
    manifest = {"dataset": "tiny/dataset", "n_windows": n_windows, "context_size": CTX,
                "n_tokens": n_windows * CTX, "created_at": "2026-01-02T03:04:05+00:00",
                "model_shape": {"n_layers": 2, "d_mlp": 64}}
    source = InMemorySource.from_activations(acts, token_ids, vocab, logit_weights, manifest)
    neuronpedia = InMemoryNeuronpedia.from_activations(acts, x.numpy(), token_ids, vocab, logit_weights,
                                                       sae.W_dec.detach().numpy(), manifest)
    explanations = {1: [{"description": "dates and times", "method": "manual", "model": None, "score": 0.5,
                         "created_at": "2026-01-01T00:00:00+00:00"}]}
    return ExportInputs(source=source, info=SAEInfo.from_sae(sae, "sae-1"), sae=sae, explanations=explanations,
                        labels={1: ("dates and times", "time")}, extraction_id="ext-1", neuronpedia=neuronpedia)


@pytest.fixture(scope="module")
def standard_sae() -> SAE:
    return make_sae("standard", d_in=16, d_sae=40, seed=3)


def run(inputs: ExportInputs, out: Path, **cfg) -> dict:
    config = make_config(**{"batch_size": 16, "model_id": "tiny-gpt2", **cfg})
    return build_export(inputs, config, out, out.with_suffix(".work"))


def test_archive_layout(standard_sae: SAE, tmp_path: Path) -> None:
    result = run(tiny_inputs(standard_sae), tmp_path / "a.zip", saedashboard_batches=True)
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        names = set(zf.namelist())
        meta = json.loads(zf.read("metadata.json"))
        batch = json.loads(zf.read("neuronpedia/batch-0.json"))
        src = f"neuronpedia/exports/tiny-gpt2/{meta['neuronpedia']['source_id']}"
        rows = [json.loads(line) for line in gzip.decompress(zf.read(f"{src}/activations/batch-0.jsonl.gz")).splitlines()]
        release = json.loads(zf.read(f"{src}/release.jsonl").splitlines()[0])
        sourceset = json.loads(zf.read(f"{src}/sourceset.jsonl").splitlines()[0])
    # the release row carries what Neuronpedia's own converter writes: without `visibility` it imports PRIVATE, and
    # without `creatorNameShort` the source page reads "null · ..."
    assert release["visibility"] == "PUBLIC" and release["creatorNameShort"] == release["creatorName"]
    assert release["defaultSourceSetName"] == sourceset["name"] and release["featured"] is False
    assert {"metadata.json", "README.md", "SHA256SUMS", "explanations/explanations.json", "saelens/cfg.json",
            "saelens/sae_weights.safetensors", "saelens/sparsity.safetensors", "saelens/pretrained_saes.yaml",
            f"{src}/model.jsonl", f"{src}/source.jsonl", f"{src}/sourceset.jsonl", f"{src}/release.jsonl"} <= names
    assert sum(n.startswith("features/") for n in names) == 40 == result["feature_count"]
    assert meta["neuronpedia_id"] == "tiny-gpt2/1-mistudio-res-40"
    assert batch["layer"] == 1 and batch["sae_set"] == "mistudio-res-40" and batch["sae_id_suffix"] is None
    assert rows and all(len(r["id"]) == 25 and r["maxValue"] == max(r["values"]) for r in rows)
    run(tiny_inputs(standard_sae), tmp_path / "default.zip")
    with zipfile.ZipFile(tmp_path / "default.zip") as zf:  # SAEDashboard's batch files are opt-in
        names = set(zf.namelist())
        assert not any(n.startswith("neuronpedia/batch-") for n in names)
        assert f"{src}/activations/batch-0.jsonl.gz" in names and f"{src}/features/batch-0.jsonl.gz" in names


def _activation_files(zf: zipfile.ZipFile) -> dict[str, list[dict]]:
    return {n: [json.loads(line) for line in gzip.decompress(zf.read(n)).splitlines()]
            for n in sorted(zf.namelist()) if "/activations/batch-" in n}


def test_bulk_activation_rows_are_complete_and_grouped_by_window(standard_sae: SAE, tmp_path: Path) -> None:
    """Every Neuronpedia example (top group and quantile bands) of every live feature is one row, equal to the
    Neuronpedia data; rows are ordered by prompt window (then feature), each file holding its own range of
    windows."""
    inputs = tiny_inputs(standard_sae)
    run(inputs, tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        files = _activation_files(zf)
        source_id = json.loads(zf.read("metadata.json"))["neuronpedia"]["source_id"]
    assert inputs.neuronpedia is not None
    np_features = [inputs.neuronpedia.neuronpedia_feature(i) for i in range(40)]
    expected = {pseudo_cuid("tiny-gpt2", source_id, f["feature_index"], n): act for f in np_features
                for n, act in enumerate(f["activations"])}
    assert any(a["bin_min"] != -1 for a in expected.values())  # the quantile bands are rows too
    got, previous_max = {}, -1
    for rows in files.values():
        keys = [(int(r["dataIndex"]), r["index"]) for r in rows]
        assert keys == sorted(keys) and keys[0][0] > previous_max  # sorted inside, disjoint ranges across files
        previous_max = keys[-1][0]
        got.update((r["id"], r) for r in rows)
    assert got.keys() == expected.keys() and len(files) > 1
    for row_id, r in got.items():
        act = expected[row_id]
        assert r["tokens"] == render_tokens(act["tokens"])  # decoded text, NUL and lone surrogates replaced
        assert r["values"] == act["values"] and r["maxValue"] == max(act["values"])
        assert (r["binMin"], r["binMax"], r["binContains"]) == (act["bin_min"], act["bin_max"], act["bin_contains"])
        assert r["qualifyingTokenIndex"] == act["qualifying_token_index"]
        assert r["dataIndex"] == str(act["window_index"])


def test_two_exports_are_byte_identical(standard_sae: SAE, tmp_path: Path) -> None:
    run(tiny_inputs(standard_sae), tmp_path / "a.zip")
    run(tiny_inputs(standard_sae), tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


class _Killed(Exception):
    pass


def test_killed_export_resumes_to_same_bytes(standard_sae: SAE, tmp_path: Path) -> None:
    run(tiny_inputs(standard_sae), tmp_path / "ref.zip")
    calls = {"n": 0}

    def die_after_two_batches() -> None:
        calls["n"] += 1
        if calls["n"] > 6:  # 5 stage checks, then the first batches
            raise _Killed

    out = tmp_path / "resumed.zip"
    cfg = make_config(batch_size=16, model_id="tiny-gpt2")
    with pytest.raises(_Killed):
        build_export(tiny_inputs(standard_sae), cfg, out, tmp_path / "work", ExportCallbacks(check_cancelled=die_after_two_batches))
    assert not out.exists()
    assert sorted(p.name for p in (tmp_path / "work" / ".state").glob("batch-*.json")) == ["batch-0.json", "batch-1.json"]
    written = []
    callbacks = ExportCallbacks(progress=lambda f, m: written.append(m))
    build_export(tiny_inputs(standard_sae), cfg, out, tmp_path / "work", callbacks)
    assert out.read_bytes() == (tmp_path / "ref.zip").read_bytes()
    assert "features: 40 / 40" in written and "features: 16 / 40" not in written  # batch 0 and 1 were not redone


def test_export_killed_while_ordering_rows_resumes_to_same_bytes(standard_sae: SAE, tmp_path: Path) -> None:
    run(tiny_inputs(standard_sae), tmp_path / "ref.zip")
    calls = {"n": 0}

    def die_in_merge() -> None:
        calls["n"] += 1
        if calls["n"] > 4 + 3 + 1:  # 4 stage checks, 3 batches, then the first merged file
            raise _Killed

    out, cfg = tmp_path / "resumed.zip", make_config(batch_size=16, model_id="tiny-gpt2")
    with pytest.raises(_Killed):
        build_export(tiny_inputs(standard_sae), cfg, out, tmp_path / "work", ExportCallbacks(check_cancelled=die_in_merge))
    merged = list((tmp_path / "work" / "stage").rglob("activations/batch-*.jsonl.gz"))
    assert len(merged) == 1 and not out.exists()
    build_export(tiny_inputs(standard_sae), cfg, out, tmp_path / "work")
    assert out.read_bytes() == (tmp_path / "ref.zip").read_bytes()


@pytest.mark.parametrize("arch", ["standard", "jumprelu", "topk", "batchtopk", "gated"])
def test_saelens_folder_loads_in_sae_lens(arch: str, tmp_path: Path) -> None:
    from sae_lens import SAE as LensSAE

    sae = make_sae(arch, d_in=16, d_sae=40, seed=5)
    run(tiny_inputs(sae, n_windows=24), tmp_path / "x.zip", format="saelens")
    with zipfile.ZipFile(tmp_path / "x.zip") as zf:
        zf.extractall(tmp_path / "x")
    lens = LensSAE.load_from_disk(str(tmp_path / "x" / "saelens"), device="cpu")
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        torch.testing.assert_close(lens.encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)
    sparsity = lens_sparsity(tmp_path / "x" / "saelens")
    assert sparsity.shape == (40,) and bool((sparsity <= 0).all())


def lens_sparsity(folder: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(folder / "sparsity.safetensors"))["sparsity"]


def test_gemma_scope_npz_sae_exports_to_sae_lens(tmp_path: Path) -> None:
    from sae_factories import write_gemma_scope
    from sae_lens import SAE as LensSAE

    from mistudio.saes.formats import read_sae

    original = make_sae("jumprelu", d_in=16, d_sae=40, seed=7)
    folder = write_gemma_scope(original, tmp_path / "gs")
    sae = read_sae(folder)
    assert sae.cfg.architecture == "jumprelu"
    sae.cfg.model_name = sae.cfg.model_name or "tiny-gemma"
    run(tiny_inputs(sae, n_windows=24), tmp_path / "g.zip", format="saelens")
    with zipfile.ZipFile(tmp_path / "g.zip") as zf:
        zf.extractall(tmp_path / "g")
    lens = LensSAE.load_from_disk(str(tmp_path / "g" / "saelens"), device="cpu")
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        torch.testing.assert_close(lens.encode(x), original.encode(x), atol=1e-5, rtol=1e-5)


def test_incremental_export_merges_with_base(standard_sae: SAE, tmp_path: Path) -> None:
    inputs = tiny_inputs(standard_sae)
    run(inputs, tmp_path / "full.zip")
    run(inputs, tmp_path / "base.zip", selection={"mode": "range", "start": 0, "stop": 20})
    merged = run(inputs, tmp_path / "merged.zip", selection={"mode": "range", "start": 20, "stop": 40},
                 base_export=str(tmp_path / "base.zip"), workers=2)
    assert merged["feature_count"] == 40 and merged["n_reused"] == 20
    with zipfile.ZipFile(tmp_path / "full.zip") as a, zipfile.ZipFile(tmp_path / "merged.zip") as b:
        for name in a.namelist():
            if name.startswith(("features/", "neuronpedia/batch-", "neuronpedia/exports")):
                assert a.read(name) == b.read(name), name


def test_selection_by_label_text_and_frequency(standard_sae: SAE, tmp_path: Path) -> None:
    inputs = tiny_inputs(standard_sae)
    result = run(inputs, tmp_path / "l.zip", selection={"mode": "label_text", "text": "TIME"}, format="neuronpedia")
    assert result["feature_count"] == 1
    freq = inputs.source.summary_arrays()["frequency"]
    cut = float(np.median(freq))
    result = run(inputs, tmp_path / "f.zip", selection={"mode": "frequency", "min_frequency": cut})
    assert result["feature_count"] == int((freq >= cut).sum())


def test_worker_pool_gives_the_same_bytes_and_a_sound_zip(standard_sae: SAE, tmp_path: Path) -> None:
    import shutil
    import subprocess

    serial = run(tiny_inputs(standard_sae), tmp_path / "serial.zip", workers=1, saedashboard_batches=True)
    pooled = run(tiny_inputs(standard_sae), tmp_path / "pooled.zip", workers=2, saedashboard_batches=True)
    assert serial["workers"] == 1 and pooled["workers"] == 2
    assert (tmp_path / "serial.zip").read_bytes() == (tmp_path / "pooled.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "pooled.zip") as zf:
        assert zf.testzip() is None  # every CRC of the pre-deflated entries checks out
        assert {i.compress_type for i in zf.infolist() if i.filename.startswith("neuronpedia/batch-")} == {
            zipfile.ZIP_DEFLATED}
    if shutil.which("unzip"):
        assert subprocess.run(["unzip", "-tq", str(tmp_path / "pooled.zip")], capture_output=True).returncode == 0


def test_token_ids_are_optional_in_feature_documents(standard_sae: SAE, tmp_path: Path) -> None:
    run(tiny_inputs(standard_sae), tmp_path / "a.zip", token_ids=True)
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        doc = json.loads(gzip.decompress(zf.read("features/0.json.gz")))
    ex = doc["activations"][0]
    assert len(ex["token_ids"]) == len(ex["tokens"]) == len(ex["values"]) == CTX
    run(tiny_inputs(standard_sae), tmp_path / "b.zip")
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        assert "token_ids" not in json.loads(gzip.decompress(zf.read("features/0.json.gz")))["activations"][0]


def test_uncompressed_feature_files_are_deflated_zip_members(standard_sae: SAE, tmp_path: Path) -> None:
    from mistudio.export.validate.validator import validate_export

    run(tiny_inputs(standard_sae), tmp_path / "plain.zip", compression="none", workers=2)
    with zipfile.ZipFile(tmp_path / "plain.zip") as zf:
        assert zf.testzip() is None
        infos = [i for i in zf.infolist() if i.filename.startswith("features/")]
        assert len(infos) == 40 and all(i.filename.endswith(".json") for i in infos)
        assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}
        assert json.loads(zf.read("features/3.json"))["feature_index"] == 3
    report = validate_export(tmp_path / "plain.zip")
    assert report.ok, report.to_text()  # SHA256SUMS covers the packed members too
