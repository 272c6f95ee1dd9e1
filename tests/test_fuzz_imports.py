"""Property-based fuzzing (Hypothesis) of everything that reads files a user hands in: every SAE format reader
(safetensors, npz, cfg.json, config.json, ae.pt), the config parsers, the archive unpacker, the whole import and
the labels reader. On mutated, truncated or garbage input each must either succeed or raise one of our documented
errors (`mistudio.errors`), quickly, and an import that fails leaves nothing in the store.

CI runs `FUZZ_EXAMPLES` cases per target (default 25: 400 in all, about 15 s); `benchmarks/fuzz_imports.py`
runs thousands per target with MISTUDIO_FUZZ_EXAMPLES.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sae_factories import make_sae, write_in_format
from sqlalchemy import func, select

from mistudio.catalog import service
from mistudio.catalog.archives import unpack_archive
from mistudio.catalog.labels import parse_labels
from mistudio.db.models import SAERecord
from mistudio.errors import MiStudioError
from mistudio.lm import hooks as _hooks  # noqa: F401 - imported up front: the import checks' first call loads it
from mistudio.saes.formats import detect_format, read_detected
from mistudio.saes.formats.base import load_npz, load_safetensors, npz_header, safetensors_header
from mistudio.saes.formats.saelens import parse_config
from mistudio.saes.model import SAEConfig

FUZZ_EXAMPLES = int(os.environ.get("MISTUDIO_FUZZ_EXAMPLES", "25"))
HANG_SECONDS = float(os.environ.get("MISTUDIO_FUZZ_HANG_SECONDS", "10"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                derandomize=os.environ.get("MISTUDIO_FUZZ_RANDOM") != "1",
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
T = TypeVar("T")
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")  # the archive cases repeat names


def documented(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Call `fn`: its result, or None when it raised one of our errors; anything else fails the case. A call
    running longer than HANG_SECONDS fails too."""
    start = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    except MiStudioError:
        return None
    finally:
        elapsed = time.perf_counter() - start
        assert elapsed < HANG_SECONDS, f"{getattr(fn, '__name__', fn)} took {elapsed:.1f}s"


# -- valid templates the mutations start from ---------------------------------------------------------------------
FORMATS = {"saelens": "standard", "mistudio": "topk", "gemma_scope": "jumprelu", "sparsify": "topk",
           "dictionary_learning": "gated"}


@cache
def template(fmt: str) -> dict[str, bytes]:
    """Relative path → bytes of a small valid SAE folder in `fmt` (the SAE folder is the deepest one)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        folder = write_in_format(make_sae(FORMATS[fmt], d_in=8, d_sae=12), fmt, root)
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        files["__sae__"] = folder.relative_to(root).as_posix().encode()
        return files


def write_tree(files: dict[str, bytes], root: Path) -> Path:
    """Write a template (possibly mutated) under `root`; returns the SAE folder."""
    if root.exists():
        shutil.rmtree(root)
    for name, data in files.items():
        if name != "__sae__":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
    return root / files["__sae__"].decode()


# -- strategies --------------------------------------------------------------------------------------------------
json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=12)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` truncated, with bytes flipped, with bytes spliced in or appended, or replaced by garbage."""
    kind = draw(st.sampled_from(["truncate", "flip", "splice", "append", "garbage", "same"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            if out:
                out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        return bytes(out)
    if kind == "splice":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
    if kind == "append":
        return data + draw(st.binary(min_size=1, max_size=64))
    if kind == "garbage":
        return draw(st.binary(max_size=512))
    return data


@st.composite
def mutated_json(draw: st.DrawFn, doc: Any) -> Any:
    """`doc` with values replaced by random JSON, keys dropped or added, at any depth."""
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            action = draw(st.sampled_from(["keep", "keep", "mutate", "replace", "drop"]))
            if action == "keep":
                out[key] = value
            elif action == "mutate":
                out[key] = draw(mutated_json(value))
            elif action == "replace":
                out[key] = draw(json_values)
        out.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
        return out
    if draw(st.booleans()):
        return doc
    return draw(json_values)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


@st.composite
def mutated_safetensors_header(draw: st.DrawFn, data: bytes) -> bytes:
    """A safetensors file whose JSON header is structurally mutated (dtypes, shapes, offsets, extra entries)."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    new_header = draw(mutated_json(header))
    raw = _dumps(new_header)
    if draw(st.booleans()):
        body = draw(mutated_bytes(body))
    length_field = struct.pack("<Q", len(raw)) if draw(st.integers(0, 4)) else struct.pack("<Q", draw(
        st.integers(0, 2**64 - 1)))
    return length_field + raw + body


@st.composite
def mutated_folder(draw: st.DrawFn, fmt: str) -> dict[str, bytes]:
    """A template SAE folder with one or more of its files mutated (JSON structurally, binaries bytewise)."""
    files = dict(template(fmt))
    names = [n for n in files if n != "__sae__"]
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True)):
        data = files[name]
        if name.endswith(".json"):
            if draw(st.booleans()):
                files[name] = _dumps(draw(mutated_json(json.loads(data))))
            else:
                files[name] = draw(mutated_bytes(data))
        elif name.endswith(".safetensors") and draw(st.booleans()):
            files[name] = draw(mutated_safetensors_header(data))
        else:
            files[name] = draw(mutated_bytes(data))
    return files


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "fuzz"
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- the readers -------------------------------------------------------------------------------------------------
@FUZZ
@given(data=st.one_of(mutated_bytes(template("saelens")["sae/sae_weights.safetensors"]),
                      mutated_safetensors_header(template("saelens")["sae/sae_weights.safetensors"])))
def test_fuzz_safetensors_reader(scratch: Path, data: bytes) -> None:
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / "w.safetensors"
    path.write_bytes(data)
    documented(safetensors_header, path)
    documented(load_safetensors, path)


@FUZZ
@given(data=mutated_bytes(template("gemma_scope")["layer_3/width_12k/average_l0_42/params.npz"]))
def test_fuzz_npz_reader(scratch: Path, data: bytes) -> None:
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / "params.npz"
    path.write_bytes(data)
    documented(npz_header, path)
    documented(load_npz, path)


@pytest.mark.parametrize("fmt", list(FORMATS))
@FUZZ
@given(data=st.data())
def test_fuzz_format_detection_and_reading(scratch: Path, fmt: str, data: st.DataObject) -> None:
    folder = write_tree(data.draw(mutated_folder(fmt)), scratch)
    detected = documented(detect_format, scratch)
    if detected is not None:
        documented(read_detected, detected)
    if folder.is_dir():
        documented(detect_format, folder)


@FUZZ
@given(doc=st.one_of(mutated_json(json.loads(template("saelens")["sae/cfg.json"])), json_values))
def test_fuzz_saelens_config_parser(doc: Any) -> None:
    if isinstance(doc, dict):
        documented(parse_config, doc)


@FUZZ
@given(doc=st.one_of(mutated_json(json.loads(template("mistudio")["sae/config.json"])["config"]),
                     st.dictionaries(st.text(max_size=10), json_values, max_size=6)))
def test_fuzz_sae_config_from_dict(doc: Any) -> None:
    if isinstance(doc, dict):
        documented(SAEConfig.from_dict, doc)


# -- archives ----------------------------------------------------------------------------------------------------
entry_names = st.one_of(
    st.sampled_from(["cfg.json", "sae_weights.safetensors", "inner/cfg.json", "../escape", "../../etc/x", "/abs",
                     "a/../../b", "C:evil", "\\windows", "./x", "a//b", "dir/", ".hidden", "a/./b"]),
    st.text(min_size=1, max_size=20),
)


@st.composite
def archives(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, bytes) of a zip or tar with odd entries (escaping names, links, dirs), or a mutated one."""
    kind = draw(st.sampled_from(["zip", "tar", "tar.gz", "mutated-zip"]))
    entries = draw(st.lists(st.tuples(entry_names, st.binary(max_size=64), st.sampled_from(["file", "dir", "link"])),
                            max_size=6))
    buf = io.BytesIO()
    if kind in ("zip", "mutated-zip"):
        with zipfile.ZipFile(buf, "w") as zf:
            for name, content, what in entries:
                info = zipfile.ZipInfo(name + ("/" if what == "dir" and not name.endswith("/") else ""))
                if what == "link":
                    info.external_attr = (0o120777 << 16)
                try:
                    zf.writestr(info, content if what != "dir" else b"")
                except (ValueError, UnicodeEncodeError):
                    continue
        data = buf.getvalue()
        return "a.zip", draw(mutated_bytes(data)) if kind == "mutated-zip" else data
    with tarfile.open(fileobj=buf, mode="w:gz" if kind == "tar.gz" else "w") as tf:
        for name, content, what in entries:
            member = tarfile.TarInfo(name)
            payload: io.BytesIO | None = None
            if what == "dir":
                member.type = tarfile.DIRTYPE
            elif what == "link":
                member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
            else:
                member.size = len(content)
                payload = io.BytesIO(content)
            try:
                tf.addfile(member, payload)
            except (ValueError, UnicodeEncodeError):
                continue
    return f"a.{kind}", buf.getvalue()


@FUZZ
@given(archive=archives(), max_bytes=st.sampled_from([10, 10_000, 1 << 20]))
def test_fuzz_archive_unpacker_keeps_inside(scratch: Path, archive: tuple[str, bytes], max_bytes: int) -> None:
    name, data = archive
    outside = scratch / "outside"
    dest = outside / "dest"
    shutil.rmtree(outside, ignore_errors=True)
    outside.mkdir(parents=True)
    path = outside / name
    path.write_bytes(data)
    documented(unpack_archive, path, dest, max_bytes)
    assert sorted(p.name for p in outside.iterdir()) == sorted(["dest", name])  # nothing written beside dest
    for p in dest.rglob("*"):
        assert not p.is_symlink() and dest.resolve() in p.resolve().parents


# -- the whole import --------------------------------------------------------------------------------------------
def _store_state(studio: Any) -> tuple[int, list[str], list[str]]:
    with studio.sessions() as s:
        rows = s.scalar(select(func.count()).select_from(SAERecord)) or 0
    saes = sorted(p.name for p in studio.settings.saes_dir.iterdir())
    tmp = sorted(p.name for p in studio.settings.tmp_dir.iterdir())
    return rows, saes, tmp


@pytest.mark.parametrize("fmt", list(FORMATS))
@FUZZ
@given(data=st.data(), as_zip=st.booleans())
def test_fuzz_import_is_atomic(studio: Any, scratch: Path, fmt: str, data: st.DataObject, as_zip: bool) -> None:
    files = data.draw(mutated_folder(fmt))
    folder = write_tree(files, scratch / "src")
    source: Path = folder if folder.is_dir() else scratch / "src"
    if as_zip:
        source = scratch / "sae.zip"
        with zipfile.ZipFile(source, "w") as zf:
            for p in sorted(folder.rglob("*")) if folder.is_dir() else []:
                if p.is_file():
                    zf.write(p, p.relative_to(folder).as_posix())
    before = _store_state(studio)
    imported = documented(service.import_local, studio, source, hook_name="blocks.1.hook_resid_post")
    rows, saes, tmp = _store_state(studio)
    assert tmp == [], "an import left files in the store's temp folder"
    if imported is None or imported.duplicate_of:
        assert (rows, saes) == before[:2], "a refused or duplicate import changed the store"
    else:
        assert rows == before[0] + 1 and saes == sorted([*before[1], imported.id])
        assert imported.status == "ready"
        service.load_sae_for(studio, imported.id)  # what was accepted also loads


# -- labels ------------------------------------------------------------------------------------------------------
label_rows = st.lists(st.dictionaries(st.sampled_from(["feature_index", "index", "description", "label",
                                                       "explanation", "score", "method", "model", "category"]),
                                      json_values, max_size=6), max_size=5)


@st.composite
def label_files(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["json-rows", "json-export", "json-any", "csv", "bytes"]))
    if kind == "json-rows":
        return _dumps(draw(label_rows)), "labels.json"
    if kind == "json-export":
        doc = {"explanations": draw(st.lists(st.fixed_dictionaries(
            {"feature_index": json_values, "explanations": st.one_of(label_rows, json_values)}), max_size=3))}
        return _dumps(draw(mutated_json(doc))), "explanations.json"
    if kind == "json-any":
        return _dumps(draw(json_values)), "x.json"
    if kind == "csv":
        header = draw(st.lists(st.sampled_from(["feature_index", "description", "score", "category", "x"]),
                               min_size=1, max_size=5))
        rows = draw(st.lists(st.lists(st.text(max_size=8), min_size=0, max_size=6), max_size=4))
        text = "\n".join([",".join(header), *(",".join(r) for r in rows)])
        return text.encode(), "labels.csv"
    return draw(st.binary(max_size=200)), draw(st.sampled_from(["l.csv", "l.json", "l.txt"]))


@FUZZ
@given(file=label_files())
def test_fuzz_labels_reader(file: tuple[bytes, str]) -> None:
    data, name = file
    rows = documented(parse_labels, data, name)
    for row in rows or []:
        assert isinstance(row["feature_index"], int) and row["description"].strip()
