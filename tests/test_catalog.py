"""The SAE catalog: register/import every format, list/filter/search/sort/paginate, delete, convert,
training links, archive safety — on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
import torch
from sae_factories import make_sae, write_in_format
from sqlalchemy import insert, select

from mistudio.catalog import service
from mistudio.catalog.query import SAEQuery, list_saes
from mistudio.db.models import SAERecord
from mistudio.errors import ConflictError, InvalidInputError, NotFoundError, UnknownFormatError
from mistudio.saes.formats import read_sae


def _zip_folder(folder: Path, out: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, prefix + f.relative_to(folder).as_posix())
    return out


@pytest.mark.parametrize("fmt", ["saelens", "mistudio", "gemma_scope", "sparsify", "dictionary_learning"])
def test_import_each_format_detects_and_copies(studio, tmp_path: Path, fmt: str) -> None:
    arch = {"gemma_scope": "jumprelu", "sparsify": "topk", "dictionary_learning": "standard"}.get(fmt, "standard")
    sae = make_sae(arch, d_in=16, d_sae=40)
    folder = write_in_format(sae, fmt, tmp_path / "src")
    data = service.import_local(studio, folder, name=f"my-{fmt}")
    assert data.format == fmt and data.source == "upload" and data.status == "ready"
    assert (data.d_in, data.d_sae, data.architecture) == (16, 40, arch)
    assert not Path(data.local_path).is_absolute()
    stored = studio.settings.home / data.local_path
    loaded = service.load_sae_for(studio, data.id)
    x = torch.randn(8, 16)
    torch.testing.assert_close(loaded.encode(x), read_sae(folder).encode(x), atol=1e-5, rtol=0)
    assert stored.is_dir() and data.size_bytes == sum(p.stat().st_size for p in stored.iterdir())


def test_import_zip_and_tar(studio, tmp_path: Path) -> None:
    folder = write_in_format(make_sae("topk"), "saelens", tmp_path / "sae")
    z = service.import_local(studio, _zip_folder(folder, tmp_path / "sae.zip", prefix="inner/"))
    assert z.name == "sae" and z.architecture == "topk"
    tar_path = tmp_path / "sae2.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tf:
        tf.add(folder, arcname="x")
    assert service.import_local(studio, tar_path).format == "saelens"


def _assert_nothing_left(studio) -> None:
    with studio.sessions() as s:
        assert s.scalars(select(SAERecord)).all() == []
    assert list(studio.settings.saes_dir.iterdir()) == []
    assert [p for p in studio.settings.tmp_dir.iterdir()] == []


def test_import_rejects_escaping_entries_oversize_and_non_sae(studio, tmp_path: Path, monkeypatch) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escape.txt", "x")
    with pytest.raises(InvalidInputError, match="escapes the target folder"):
        service.import_local(studio, evil)
    assert not (tmp_path / "escape.txt").exists()

    evil_tar = tmp_path / "evil.tar"
    with tarfile.open(evil_tar, "w") as tf:
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(InvalidInputError, match="link"):
        service.import_local(studio, evil_tar)

    junk = tmp_path / "junk.zip"
    with zipfile.ZipFile(junk, "w") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(UnknownFormatError, match="notes.txt"):
        service.import_local(studio, junk)

    big = _zip_folder(write_in_format(make_sae("standard"), "saelens", tmp_path / "big"), tmp_path / "big.zip")
    studio.settings.max_import_bytes = 100
    with pytest.raises(InvalidInputError, match="MISTUDIO_MAX_IMPORT_BYTES"):
        service.import_local(studio, big)
    _assert_nothing_left(studio)

    with pytest.raises(NotFoundError, match="does not exist"):
        service.import_local(studio, tmp_path / "nope")


def test_nested_folder_with_several_saes_asks_for_one(studio, tmp_path: Path) -> None:
    root = tmp_path / "release"
    write_in_format(make_sae("standard", seed=1), "saelens", root / "blocks.0.hook_resid_pre")
    write_in_format(make_sae("standard", seed=2), "saelens", root / "blocks.1.hook_resid_pre")
    with pytest.raises(InvalidInputError, match="holds 2 SAEs"):
        service.import_local(studio, root)
    data = service.import_local(studio, root / "blocks.1.hook_resid_pre")
    assert data.name == "blocks.1.hook_resid_pre"


def test_list_filter_search_sort_paginate_delete(any_db_studio, tmp_path: Path) -> None:
    studio = any_db_studio
    ids = []
    for i, (arch, hook) in enumerate([("standard", "blocks.0.hook_resid_pre"), ("topk", "blocks.3.hook_mlp_out"),
                                      ("jumprelu", "blocks.3.hook_resid_post")]):
        folder = write_in_format(make_sae(arch, hook_name=hook, model_name=f"model-{i % 2}"), "saelens",
                                 tmp_path / f"s{i}")
        ids.append(service.import_local(studio, folder, name=f"sae-{i}").id)
    with studio.sessions() as s:
        everything = list_saes(s, SAEQuery())
        assert everything.total == 3
        assert everything.facets.layers == [0, 3]
        assert {it.name for it in list_saes(s, SAEQuery(layer=3)).items} == {"sae-1", "sae-2"}
        assert [it.name for it in list_saes(s, SAEQuery(model="model-0", sort="name", order="asc")).items] == [
            "sae-0", "sae-2"]
        assert [it.name for it in list_saes(s, SAEQuery(search="MLP_OUT")).items] == ["sae-1"]
        page = list_saes(s, SAEQuery(sort="name", order="desc", page=2, page_size=2))
        assert [it.name for it in page.items] == ["sae-0"] and page.total == 3
        with pytest.raises(InvalidInputError):
            list_saes(s, SAEQuery(sort="password"))
    folder = studio.settings.home / studio.sessions().get(SAERecord, ids[0]).local_path
    service.delete_sae(studio, ids[0])
    if folder is not None:
        assert not folder.exists()
    with pytest.raises(NotFoundError):
        service.delete_sae(studio, ids[0])


def test_training_link_and_statistics(any_db_studio, tmp_path: Path) -> None:
    studio = any_db_studio
    sae = make_sae("standard", d_sae=20)
    with torch.no_grad():
        sae.W_dec[3].zero_()
    data = service.import_local(studio, write_in_format(sae, "mistudio", tmp_path / "n"))
    with studio.sessions() as s, s.begin():
        training = service.create_training(s, name="run-1", model_name="tiny-gpt2", dataset="tiny/dataset",
                                           hyperparameters={"lr": 1e-3}, metrics={"l0": 12.5})
        linked = service.link_training(s, data.id, training.id)
        assert linked.training_id == training.id
        with pytest.raises(NotFoundError):
            service.link_training(s, data.id, "missing")
    stats = service.sae_statistics(studio, data.id)
    assert stats.size_bytes == data.size_bytes
    assert stats.model_dump()["decoder"]["dead_rows"] == 1 if "decoder" in stats.model_dump() else True


def test_convert_catalogued_sae(studio, tmp_path: Path) -> None:
    sae = make_sae("gated")
    data = service.import_local(studio, write_in_format(sae, "saelens", tmp_path / "g"))
    out = service.convert_catalogued(studio, data.id, "mistudio", tmp_path / "native")
    x = torch.randn(5, 16)
    torch.testing.assert_close(read_sae(out.path).encode(x), sae.encode(x), atol=1e-5, rtol=0)
    with pytest.raises(InvalidInputError, match="already exists"):
        service.convert_catalogued(studio, data.id, "mistudio", tmp_path / "native")


def test_listing_ten_thousand_saes_is_fast(any_db_studio) -> None:
    studio = any_db_studio
    rows = [{"id": f"{i:08d}-0000-0000-0000-000000000000", "name": f"sae-{i}", "source": "huggingface",
             "status": "ready", "model_name": f"m{i % 7}", "layer": i % 26, "hook_name": f"blocks.{i % 26}.hook_resid_post",
             "d_in": 2304, "d_sae": 16384, "architecture": "jumprelu", "metadata": {}} for i in range(10_000)]
    with studio.sessions() as s, s.begin():
        s.execute(insert(SAERecord), rows)
    with studio.sessions() as s:
        start = time.perf_counter()
        page = list_saes(s, SAEQuery(layer=12, sort="name", page=3, page_size=50))
        filtered = list_saes(s, SAEQuery(search="sae-99", page_size=100))
        elapsed = time.perf_counter() - start
    assert page.total == len([r for r in rows if r["layer"] == 12]) and len(page.items) == 50
    assert filtered.total == 111
    assert elapsed < 1.0, f"listing took {elapsed:.2f}s"


def test_duplicate_download_conflicts(studio) -> None:
    service.start_hf_download(studio, "google/gemma-scope-2b-pt-res", "layer_1/width_16k/average_l0_10")
    with pytest.raises(ConflictError, match="already in the catalog"):
        service.start_hf_download(studio, "google/gemma-scope-2b-pt-res", "layer_1/width_16k/average_l0_10")
    with pytest.raises(InvalidInputError, match="owner/name"):
        service.start_hf_download(studio, "not-a-repo")


def test_zip_in_memory_helper_is_valid() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a", "b")
    assert zipfile.ZipFile(buf).namelist() == ["a"]


def test_gemma_scope_folder_outside_its_repo_takes_model_and_hook(studio, tmp_path: Path) -> None:
    folder = write_in_format(make_sae("jumprelu"), "gemma_scope", tmp_path / "gs")
    data = service.import_local(studio, folder, model_name="gemma-2-2b", hook_name="blocks.3.hook_resid_post")
    assert (data.model_name, data.hook_name, data.layer) == ("gemma-2-2b", "blocks.3.hook_resid_post", 3)
    sae = service.load_sae_for(studio, data.id)  # the copied npz alone no longer says which hook it reads
    assert (sae.cfg.model_name, sae.cfg.hook_name, sae.cfg.hook_layer) == ("gemma-2-2b", "blocks.3.hook_resid_post", 3)
