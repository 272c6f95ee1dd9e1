"""Imports are checked before anything is ready: truncated files, configs that do not describe the weights,
non-float or NaN/Inf tensors and hooks miStudio cannot run are refused with nothing left behind; re-importing the
same files points to the SAE already catalogued."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sae_factories import make_sae, write_in_format
from safetensors.torch import load_file, save_file
from sqlalchemy import select
from typer.testing import CliRunner

from mistudio.catalog import service
from mistudio.catalog.import_checks import HOOK_OK, HOOK_UNVERIFIED, check_import_root
from mistudio.db.models import SAERecord
from mistudio.errors import CorruptFileError, ForbiddenError, InvalidInputError
from mistudio.saes.formats import read_sae
from mistudio.studio import Studio


def _assert_nothing_left(studio: Studio) -> None:
    with studio.sessions() as s:
        assert s.scalars(select(SAERecord)).all() == []
    assert not studio.settings.saes_dir.exists() or list(studio.settings.saes_dir.iterdir()) == []
    assert not studio.settings.tmp_dir.exists() or list(studio.settings.tmp_dir.iterdir()) == []


def _saelens(tmp_path: Path, **kwargs: object) -> Path:
    return write_in_format(make_sae("standard", d_in=16, d_sae=32, **kwargs), "saelens", tmp_path / "src")  # type: ignore[arg-type]


def _edit_cfg(folder: Path, **changes: object) -> None:
    cfg = json.loads((folder / "cfg.json").read_text())
    for key, value in changes.items():
        if key in cfg:
            cfg[key] = value
        else:
            cfg["metadata"][key] = value
    (folder / "cfg.json").write_text(json.dumps(cfg))


def _zip(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f.name)
    return out


def test_truncated_safetensors_is_refused_and_nothing_is_left(studio: Studio, tmp_path: Path) -> None:
    folder = _saelens(tmp_path)
    weights = folder / "sae_weights.safetensors"
    full = weights.read_bytes()
    weights.write_bytes(full[: len(full) // 2])
    with pytest.raises(CorruptFileError, match=r"sae_weights.safetensors is truncated: .* copy or export") as err:
        service.import_local(studio, folder)
    assert "download" not in err.value.message
    _assert_nothing_left(studio)
    with pytest.raises(CorruptFileError, match="truncated"):  # the same through an archive
        service.import_local(studio, _zip(folder, tmp_path / "half.zip"))
    _assert_nothing_left(studio)


def test_config_that_does_not_describe_the_weights_is_refused(studio: Studio, tmp_path: Path) -> None:
    folder = _saelens(tmp_path)
    _edit_cfg(folder, d_sae=2048)
    with pytest.raises(InvalidInputError, match=r"cfg.json says d_in=16, d_sae=2048, so W_enc should be \[16, 2048\]"
                                                r", but sae_weights.safetensors stores it as \[16, 32\] "
                                                r"\(the weights say d_in=16, d_sae=32\)"):
        service.import_local(studio, folder)
    _assert_nothing_left(studio)


def test_missing_and_non_float_tensors_are_refused(studio: Studio, tmp_path: Path) -> None:
    folder = _saelens(tmp_path)
    weights = folder / "sae_weights.safetensors"
    tensors = load_file(weights)
    save_file({k: v for k, v in tensors.items() if k != "b_enc"}, weights)
    with pytest.raises(InvalidInputError, match="has no b_enc tensor, which a standard SAE needs"):
        service.import_local(studio, folder)
    save_file({**tensors, "W_dec": tensors["W_dec"].to(torch.int32)}, weights)
    with pytest.raises(InvalidInputError, match="stores W_dec as i32; SAE weights must be floating point"):
        service.import_local(studio, folder)
    _assert_nothing_left(studio)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_or_inf_in_the_weights_is_refused(studio: Studio, tmp_path: Path, value: float) -> None:
    folder = _saelens(tmp_path)
    weights = folder / "sae_weights.safetensors"
    tensors = load_file(weights)
    tensors["W_dec"][5, 7] = value
    save_file(tensors, weights)
    with pytest.raises(InvalidInputError, match=r"tensor W_dec holds NaN or infinite values \(first at \[5, 7\]\)"):
        service.import_local(studio, folder)
    _assert_nothing_left(studio)


def test_nan_in_a_gemma_scope_npz_and_a_truncated_npz_are_refused(studio: Studio, tmp_path: Path) -> None:
    folder = write_in_format(make_sae("jumprelu", d_in=16, d_sae=32), "gemma_scope", tmp_path / "gs")
    params = folder / "params.npz"
    with np.load(params) as data:
        arrays = {k: data[k].copy() for k in data.files}
    arrays["threshold"][3] = np.nan
    np.savez(params, **arrays)
    with pytest.raises(InvalidInputError, match=r"params.npz: tensor threshold holds NaN .* \[3\]"):
        service.import_local(studio, folder, hook_name="blocks.1.hook_resid_post")
    raw = params.read_bytes()
    params.write_bytes(raw[: len(raw) - 200])
    with pytest.raises(CorruptFileError, match="params.npz is not a complete .npz archive"):
        service.import_local(studio, folder, hook_name="blocks.1.hook_resid_post")
    _assert_nothing_left(studio)


def test_truncated_dictionary_learning_pt_is_refused(studio: Studio, tmp_path: Path) -> None:
    folder = write_in_format(make_sae("standard", d_in=16, d_sae=32), "dictionary_learning", tmp_path / "dl")
    ae = folder / "ae.pt"
    raw = ae.read_bytes()
    ae.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="ae.pt is truncated or unreadable"):
        service.import_local(studio, folder)
    _assert_nothing_left(studio)


def test_unsupported_hooks_are_refused(studio: Studio, tmp_path: Path) -> None:
    folder = _saelens(tmp_path, hook_name="blocks.1.hook_foo_bar")
    with pytest.raises(InvalidInputError, match=r"cfg.json says hook_name 'blocks.1.hook_foo_bar', a hook miStudio "
                                                r"cannot run"):
        service.import_local(studio, folder)
    with pytest.raises(InvalidInputError, match="a hook miStudio cannot run"):  # an override is checked too
        service.import_local(studio, _saelens(tmp_path / "b"), hook_name="blocks.2.resid")
    _assert_nothing_left(studio)


def test_layer_is_checked_when_the_model_is_on_this_machine_else_marked_unverified(studio: Studio, tmp_path: Path) -> None:
    from transformers import GPT2Config

    model_dir = tmp_path / "tiny-model"
    GPT2Config(n_layer=4, n_embd=16, n_head=2).save_pretrained(model_dir)
    folder = _saelens(tmp_path / "a", hook_name="blocks.99.hook_resid_post", model_name=str(model_dir))
    with pytest.raises(InvalidInputError, match=r"layer 99, but model .* has layers 0..3"):
        service.import_local(studio, folder)
    _assert_nothing_left(studio)

    ok = service.import_local(studio, _saelens(tmp_path / "b", hook_name="blocks.3.hook_resid_post",
                                               model_name=str(model_dir)))
    assert ok.metadata["import_checks"]["hook_status"] == HOOK_OK
    assert ok.metadata["import_checks"]["n_layers"] == 4

    unknown = service.import_local(studio, _saelens(tmp_path / "c", hook_name="blocks.99.hook_resid_post",
                                                    model_name="no-such-model-here"))
    assert unknown.status == "ready" and unknown.metadata["import_checks"]["hook_status"] == HOOK_UNVERIFIED


@pytest.mark.parametrize("hook", ["model.layers.3.output", "model.layers.3.self_attn.o_proj.input", "model.layers.3"])
def test_hf_module_paths_are_accepted_as_unverified(studio: Studio, tmp_path: Path, hook: str) -> None:
    data = service.import_local(studio, _saelens(tmp_path), hook_name=hook)
    assert data.hook_name == hook and data.metadata["import_checks"]["hook_status"] == HOOK_UNVERIFIED


@pytest.mark.parametrize("hook", ["blocks.2.hook_mlp_in", "hook_embed", "blocks.0.attn.hook_z"])
def test_hooks_mistudio_runs_are_accepted(studio: Studio, tmp_path: Path, hook: str) -> None:
    data = service.import_local(studio, _saelens(tmp_path), hook_name=hook)
    assert data.hook_name == hook and data.status == "ready"


def test_same_zip_three_times_gives_one_sae(any_db_studio: Studio, tmp_path: Path) -> None:
    studio = any_db_studio
    archive = _zip(_saelens(tmp_path), tmp_path / "sae.zip")
    first = service.import_local(studio, archive)
    assert first.duplicate_of is None and len(first.metadata["content_sha256"]) == 64
    again = [service.import_local(studio, archive, name=f"copy {i}") for i in range(2)]
    assert [a.duplicate_of for a in again] == [first.id, first.id]
    assert [a.id for a in again] == [first.id, first.id] and again[0].name == first.name
    with studio.sessions() as s:
        assert len(s.scalars(select(SAERecord)).all()) == 1
    assert [p.name for p in studio.settings.saes_dir.iterdir()] == [first.id]
    assert list(studio.settings.tmp_dir.iterdir()) == []
    # the same weights read through another hook are another SAE
    other = service.import_local(studio, archive, hook_name="blocks.0.hook_resid_pre")
    assert other.duplicate_of is None and other.id != first.id


def test_cli_import_says_it_is_a_duplicate_and_refuses_bad_files(studio: Studio, tmp_path: Path) -> None:
    from mistudio.cli.main import app

    folder = _saelens(tmp_path)
    runner = CliRunner()
    first = runner.invoke(app, ["sae", "import", str(folder)])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["sae", "import", str(folder)])
    assert second.exit_code == 0 and "already in the catalog" in second.output
    _edit_cfg(folder, d_sae=2048)
    bad = runner.invoke(app, ["sae", "import", str(folder)])
    assert bad.exit_code == 1 and "d_sae=2048" in bad.output


def test_accepted_import_loads_the_same_sae(studio: Studio, tmp_path: Path) -> None:
    folder = _saelens(tmp_path)
    data = service.import_local(studio, folder)
    assert set(data.metadata["import_checks"]["checked"]) >= {"hook", "headers", "shapes", "values", "reader"}
    x = torch.randn(4, 16)
    torch.testing.assert_close(service.load_sae_for(studio, data.id).encode(x), read_sae(folder).encode(x))


def test_import_root_rule(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sae").mkdir(parents=True)
    (tmp_path / "data2").mkdir()
    (data / "escape").symlink_to(tmp_path / "data2")
    assert check_import_root(data / "sae", [data]) == (data / "sae").resolve()
    assert check_import_root(data / "not-yet", [data]) == (data / "not-yet").resolve()
    for outside in (tmp_path / "data2", data / ".." / "data2", data / "escape", tmp_path / "data2" / "nope",
                    Path("/usr")):
        with pytest.raises(ForbiddenError, match="outside the folders this server imports from"):
            check_import_root(outside, [data])
    with pytest.raises(ForbiddenError, match="MISTUDIO_IMPORT_ROOTS lists no folders"):
        check_import_root(data / "sae", [])


def test_config_claiming_more_parameters_than_the_files_hold_is_refused(tmp_path: Path) -> None:
    import dataclasses
    import time

    from mistudio.catalog.import_checks import check_size
    from mistudio.saes.formats import detect_format

    detected = detect_format(_saelens(tmp_path))
    huge = dataclasses.replace(detected, config=dataclasses.replace(detected.config, d_sae=2**34))
    start = time.perf_counter()
    with pytest.raises(InvalidInputError, match=r"d_sae=17179869184: .* parameters, more than the"):
        check_size(huge, 10_000)
    assert time.perf_counter() - start < 1  # nothing was allocated
    check_size(detected, (16 * 32 * 2 + 32 + 16) * 4)
