"""What an SAE must pass before the catalog calls it ready.

* every tensor the configuration implies is present, with that shape and a floating-point dtype (read from the file
  headers: no weights are loaded);
* no file is truncated (a safetensors header against the file size, an `.npz` member against its `.npy` header);
* no NaN or Inf in the weights (read in blocks of `BLOCK_ELEMENTS` values, so memory stays small);
* the hook is one miStudio can run (`lm.hooks.parse_hook_name`, or an HF module path, `lm.hooks.is_hf_module_path`);
  its layer is checked against the model's layer count when the model's config is on this machine, otherwise the
  hook is recorded as `HOOK_UNVERIFIED` and checked when a model is chosen for an extraction;
* a content fingerprint of the tensors (SHA-256 over names, dtypes, shapes and bytes) finds re-imports.

`check_import_root` is the rule for imports from server paths over REST: the resolved path must lie inside one of
`MISTUDIO_IMPORT_ROOTS`, decided before anything reads the folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import torch

from mistudio.errors import CorruptFileError, ForbiddenError, InvalidInputError, MiStudioError
from mistudio.saes.formats import DetectedSAE, read_detected
from mistudio.saes.formats.base import TensorInfo, npz_header, safetensors_expected_size, safetensors_header
from mistudio.saes.model import SAE, SAEConfig, layer_from_hook_name

BLOCK_ELEMENTS = 1 << 22  # values per block of the NaN/Inf scan (16 MiB of float32)
FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")
TENSOR_SUFFIXES = (".safetensors", ".npz", ".pt", ".pth")
# files that hold statistics, not weights: fingerprinted, but not scanned for NaN/Inf (log-densities may be -inf)
AUXILIARY_FILES = frozenset({"sparsity.safetensors"})
# weights up to this size are also loaded once by the format's own reader (a check of the code path that runs them)
FULL_READ_MAX_BYTES = 256 * 1024**2
HOOK_OK: Final = "ok"
HOOK_UNVERIFIED: Final = "unverified until a model is chosen"
HOOK_MISSING: Final = "missing"
HookStatus = Literal["ok", "unverified until a model is chosen", "missing"]

Orientation = Literal["same", "transposed", "either"]


@dataclass(frozen=True)
class _Layout:
    """Where a format keeps its weights: the file, and the stored names of each SAELens tensor."""

    weights: str
    aliases: dict[str, tuple[tuple[str, Orientation], ...]] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()
    scalar_ok: frozenset[str] = frozenset()  # tensors that may be stored as one number (broadcast on load)


# the name mappings each reader applies (saes/formats/*.py `read`)
_LAYOUTS: dict[str, _Layout] = {
    "saelens": _Layout("sae_weights.safetensors"),
    "mistudio": _Layout("model.safetensors"),
    "sparsify": _Layout("sae.safetensors", {
        "W_enc": (("encoder.weight", "transposed"),),
        "b_enc": (("encoder.bias", "same"),),
        "W_dec": (("W_dec", "either"),),
    }, optional=frozenset({"b_enc"})),
    "gemma_scope": _Layout("params.npz", {
        "W_enc": (("W_enc", "same"), ("w_enc", "same")),
        "W_dec": (("W_dec", "same"), ("w_dec", "same")),
    }, optional=frozenset({"b_dec"})),
    "dictionary_learning": _Layout("ae.pt", {
        "W_enc": (("W_enc", "same"), ("encoder.weight", "transposed")),
        "W_dec": (("W_dec", "same"), ("decoder.weight", "transposed")),
        "b_dec": (("b_dec", "same"), ("bias", "same"), ("decoder_bias", "same")),
        "b_enc": (("b_enc", "same"), ("encoder.bias", "same")),
        "b_mag": (("mag_bias", "same"),),
        "b_gate": (("gate_bias", "same"),),
    }, scalar_ok=frozenset({"threshold"})),
}


@dataclass
class ImportReport:
    """What the checks found: the weights' fingerprint, the hook's status, and what was checked."""

    fingerprint: str
    hook_status: HookStatus
    hook_message: str | None
    n_layers: int | None
    checked: list[str]

    def to_dict(self) -> dict[str, Any]:
        """The JSON kept on the catalog row (`metadata.import_checks`)."""
        return {"fingerprint": self.fingerprint, "hook_status": self.hook_status,
                "hook_message": self.hook_message, "n_layers": self.n_layers, "checked": self.checked}


# -- where a REST import may read from ----------------------------------------------------------------------------
def check_import_root(path: str | Path, roots: Sequence[Path]) -> Path:
    """The resolved `path` (symlinks and `..` followed) when it lies inside one of `roots`; nothing is read.

    Raises:
        ForbiddenError: no roots are configured, or the resolved path is outside all of them.
    """
    if not roots:
        raise ForbiddenError(
            "importing from a path on the server is turned off: the server's MISTUDIO_IMPORT_ROOTS lists no "
            "folders. Upload the SAE as a .zip/.tar archive instead, or ask the operator to set "
            "MISTUDIO_IMPORT_ROOTS to the folders the API may import from."
        )
    resolved = Path(os.path.realpath(os.fspath(path)))
    for root in roots:
        real_root = Path(os.path.realpath(os.fspath(root)))
        if resolved == real_root or real_root in resolved.parents:
            return resolved
    raise ForbiddenError(
        f"{path} is outside the folders this server imports from (MISTUDIO_IMPORT_ROOTS); put the SAE inside "
        "one of them or upload it as a .zip/.tar archive."
    )


def check_inside_roots(paths: Sequence[Path], roots: Sequence[Path], shown: Callable[[Path], str]) -> None:
    """Refuse files that resolve (through symlinks) outside `roots`; `shown` names a file in the message.

    Raises:
        ForbiddenError: a file resolves outside every root.
    """
    for path in paths:
        try:
            check_import_root(path, roots)
        except ForbiddenError:
            raise ForbiddenError(
                f"{shown(path)} is a link to a file outside MISTUDIO_IMPORT_ROOTS; copy the file itself into "
                "the folder and import again"
            ) from None


# -- the hook ----------------------------------------------------------------------------------------------------
def model_layer_count(model_name: str | None) -> int | None:
    """The number of layers of `model_name` when its config is on this machine (a local folder or the HF cache);
    None when it is not (nothing is downloaded)."""
    if not model_name or not isinstance(model_name, str):
        return None
    from transformers import AutoConfig

    from mistudio.lm.names import hf_id_for

    path = Path(model_name).expanduser()
    try:
        source = str(path) if path.is_dir() else hf_id_for(model_name)
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except Exception:  # not available offline, or not a model: unknown until the user picks one
        return None
    n_layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    return int(n_layers) if isinstance(n_layers, int) else None


def _hook_names(cfg: SAEConfig) -> list[tuple[str, str]]:
    fields = ("hook_name", "hf_hook_name", "hook_name_out", "hf_hook_name_out")
    return [(f, v) for f in fields if isinstance(v := getattr(cfg, f, None), str) and v]


def check_hook(cfg: SAEConfig, n_layers: int | None, where: str = "the SAE's config") -> tuple[HookStatus, str | None]:
    """(status, message) of the hook(s) an SAE reads; `n_layers` is the model's layer count when known.

    Raises:
        InvalidInputError: a hook miStudio cannot run, or a layer the model does not have.
    """
    from mistudio.lm.hooks import is_hf_module_path, parse_hook_name

    names = _hook_names(cfg)
    if not names:
        return HOOK_MISSING, ("the files do not say which hook the SAE reads; give it with --hook "
                              "(or `hook_name`) before an extraction")
    needs_model = False
    for field_name, name in names:
        if is_hf_module_path(name):
            layer = layer_from_hook_name(name)
            needs_model = True  # whether the module exists depends on the model
        else:
            try:
                layer, _kind = parse_hook_name(name)
            except InvalidInputError as exc:
                raise InvalidInputError(
                    f"{where} says {field_name} {name!r}, a hook miStudio cannot run. {exc.message} "
                    "Correct it in the config, or pass the right hook with --hook (`hook_name`)."
                ) from None
        if layer is None:
            continue
        if n_layers is None:
            needs_model = True
        elif not 0 <= layer < n_layers:
            raise InvalidInputError(
                f"{where} says {field_name} {name!r}: layer {layer}, but model {cfg.model_name} has layers "
                f"0..{n_layers - 1}. Correct the hook in the config or pass the right one with --hook."
            )
    if needs_model:
        return HOOK_UNVERIFIED, (f"the hook's layer/module is checked against the model when an extraction "
                                 f"chooses one (model {cfg.model_name or 'unknown'} is not on this machine)"
                                 if n_layers is None else "the HF module path is checked when a model is loaded")
    return HOOK_OK, None


# -- the config --------------------------------------------------------------------------------------------------
_TEXT_FIELDS = ("model_name", "hook_name", "dataset_path", "neuronpedia_id", "hook_name_out", "hf_hook_name",
                "hf_hook_name_out")
_INT_FIELDS = ("d_in", "d_sae", "hook_layer", "hook_head_index", "context_size", "d_out")


def check_config(cfg: SAEConfig, where: str) -> None:
    """The config's fields have the types the catalog stores (text, whole numbers) and it is plain JSON.

    Raises:
        InvalidInputError: a field of the wrong type, or a value JSON cannot hold (NaN, Infinity).
    """
    for name in _TEXT_FIELDS:
        value = getattr(cfg, name, None)
        if value is not None and not isinstance(value, str):
            raise InvalidInputError(f"{where}: {name} should be text, not {type(value).__name__} {value!r:.60}; "
                                    "correct the config and import again")
    for name in _INT_FIELDS:
        value = getattr(cfg, name, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidInputError(f"{where}: {name} should be a whole number, not {value!r:.60}; correct the "
                                    "config and import again")
    try:
        json.dumps(cfg.to_dict(), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{where} holds a value JSON cannot store ({exc}); correct the config and import "
                                "again") from None


# -- tensors -----------------------------------------------------------------------------------------------------
def expected_shapes(cfg: SAEConfig) -> dict[str, tuple[int, ...]]:
    """SAELens tensor name → shape for `cfg` (built on the meta device: nothing is allocated)."""
    module = SAE
    if cfg.architecture == "temporal":
        from mistudio.saes.temporal import TemporalSAE

        module = TemporalSAE
    with torch.device("meta"):
        return module(cfg).expected_shapes()


def _tensor_files(detected: DetectedSAE) -> list[str]:
    return sorted(name for name in detected.files if name.lower().endswith(TENSOR_SUFFIXES))


def _config_file(detected: DetectedSAE) -> str:
    for name in ("cfg.json", "config.json"):
        if name in detected.files:
            return name
    jsons = [n for n in detected.files if n.endswith(".json")]
    return jsons[0] if jsons else "the folder and repository names"


def _dims(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _truncated(name: str, size: int, needed: int) -> CorruptFileError:
    return CorruptFileError(
        f"{name} is truncated: its header describes {needed} bytes but the file has {size}. The copy is "
        "incomplete; copy or export the file again, then import it."
    )


def _load_pt(path: Path, name: str) -> dict[str, torch.Tensor]:
    """A `.pt` state dict, memory-mapped when the file allows it; unsafe pickles are refused."""
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InvalidInputError(
            f"{name} needs arbitrary (unsafe) unpickling, not just tensors, so it was refused. Re-save it as a "
            "plain state dict (torch.save(model.state_dict(), ...)) or as safetensors."
        ) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile and pickle errors for damaged files
        raise CorruptFileError(f"{name} is truncated or unreadable ({type(exc).__name__}); copy it again") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise InvalidInputError(f"{name} is not a state dict of named tensors; it cannot be an SAE's weights")
    return state


def _st_dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class _TensorFile:
    """One tensor file's header and a block reader of its values."""

    def __init__(self, path: Path, name: str) -> None:
        self.path, self.name = path, name
        self.suffix = path.suffix.lower()
        self._pt: dict[str, torch.Tensor] | None = None
        self.header = self._read_header()

    def _read_header(self) -> dict[str, TensorInfo]:
        size = self.path.stat().st_size
        if self.suffix == ".safetensors":
            try:
                header = safetensors_header(self.path)
                needed = safetensors_expected_size(self.path)
            except CorruptFileError:
                raise CorruptFileError(
                    f"{self.name} is not a readable safetensors file (damaged or truncated header); copy or "
                    "export it again, then import it."
                ) from None
            except Exception as exc:  # a header that is JSON but not a safetensors header
                raise CorruptFileError(f"{self.name} has an invalid safetensors header ({type(exc).__name__}); "
                                       "copy or export it again, then import it.") from None
            if size != needed:
                if size < needed:
                    raise _truncated(self.name, size, needed)
                raise CorruptFileError(f"{self.name} has {size - needed} bytes after its last tensor; it is not "
                                       "a valid safetensors file. Export it again, then import it.")
            return header
        if self.suffix == ".npz":
            try:
                return npz_header(self.path)
            except CorruptFileError:
                raise CorruptFileError(
                    f"{self.name} is not a complete .npz archive (truncated or damaged); copy it again, then "
                    "import it."
                ) from None
        self._pt = _load_pt(self.path, self.name)
        return {key: TensorInfo(tuple(t.shape), _st_dtype_name(t.dtype)) for key, t in self._pt.items()}

    def blocks(self) -> Iterator[tuple[str, int, torch.Tensor | np.ndarray]]:
        """(tensor name, flat offset of the block, block of values) for every tensor, in name order."""
        if self.suffix == ".npz":
            yield from self._npz_blocks()
            return
        if self.suffix == ".safetensors":
            yield from self._safetensors_blocks()
            return
        assert self._pt is not None
        for key in sorted(self._pt):
            flat = self._pt[key].reshape(-1)
            for lo in range(0, flat.numel(), BLOCK_ELEMENTS):
                yield key, lo, flat[lo:lo + BLOCK_ELEMENTS]

    def _safetensors_blocks(self) -> Iterator[tuple[str, int, torch.Tensor]]:
        from safetensors import safe_open

        try:
            with safe_open(str(self.path), framework="pt", device="cpu") as fh:
                for key in sorted(self.header):
                    shape = self.header[key].shape
                    if len(shape) == 0:
                        yield key, 0, fh.get_tensor(key).reshape(-1)
                        continue
                    per_row = math.prod(shape[1:])
                    step = max(1, BLOCK_ELEMENTS // max(per_row, 1))
                    view = fh.get_slice(key)
                    for lo in range(0, shape[0], step):
                        yield key, lo * per_row, view[lo:lo + step].reshape(-1)
        except MiStudioError:
            raise
        except Exception as exc:  # safetensors raises its own error types
            raise CorruptFileError(f"{self.name} could not be read ({exc}); copy or export it again") from None

    def _npz_blocks(self) -> Iterator[tuple[str, int, np.ndarray]]:
        try:
            with zipfile.ZipFile(self.path) as zf:
                for member in sorted(zf.namelist()):
                    if not member.endswith(".npy"):
                        continue
                    key = member[: -len(".npy")]
                    with zf.open(member) as fh:
                        version = np.lib.format.read_magic(fh)
                        reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                  else np.lib.format.read_array_header_2_0)
                        shape, _fortran, dtype = reader(fh)
                        if dtype.hasobject:
                            raise InvalidInputError(f"{self.name}: array {key} holds Python objects; an SAE's "
                                                    "weights are numbers (re-save it with numpy.savez)")
                        remaining = math.prod(shape)
                        offset = 0
                        while remaining:
                            count = min(remaining, BLOCK_ELEMENTS)
                            raw = fh.read(count * dtype.itemsize)
                            if len(raw) < count * dtype.itemsize:
                                raise CorruptFileError(f"{self.name}: array {key} ends early; the file is "
                                                       "truncated. Copy it again, then import it.")
                            yield key, offset, np.frombuffer(raw, dtype=dtype)
                            offset += count
                            remaining -= count
        except MiStudioError:
            raise
        except Exception as exc:  # zipfile / numpy raise many types for damaged members (CRC, EOF, bad header)
            raise CorruptFileError(f"{self.name} could not be read ({type(exc).__name__}: {exc}); the file "
                                   "is damaged or truncated. Copy it again, then import it.") from None


def explain_unreadable(folder: Path) -> None:
    """Re-read the tensor headers of every file under `folder` and raise the import's own error for the first
    damaged one (used when format detection failed on a damaged file); returns when all headers read.

    Raises:
        CorruptFileError: a tensor file is truncated or damaged (named relative to `folder`).
        InvalidInputError: a `.pt` file needs unsafe unpickling or holds no tensors.
    """
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name.lower().endswith(TENSOR_SUFFIXES):
            _TensorFile(path, path.relative_to(folder).as_posix())


def _find(header: dict[str, TensorInfo], sae_name: str, layout: _Layout) -> tuple[str, Orientation] | None:
    for stored, orientation in layout.aliases.get(sae_name, ((sae_name, "same"),)):
        if stored in header:
            return stored, orientation
    return None


def _implied_dims(header: dict[str, TensorInfo], layout: _Layout) -> str:
    """'d_in=…, d_sae=…' as the stored encoder's shape says, for an error message."""
    found = _find(header, "W_enc", layout)
    if found is None or len(header[found[0]].shape) != 2:
        return ""
    rows, cols = header[found[0]].shape
    d_in, d_sae = (cols, rows) if found[1] == "transposed" else (rows, cols)
    return f" (the weights say d_in={d_in}, d_sae={d_sae})"


def check_tensors(detected: DetectedSAE, header: dict[str, TensorInfo], layout: _Layout) -> None:
    """Every tensor the config implies is in `header`, with its shape and a floating-point dtype.

    Raises:
        InvalidInputError: a tensor is missing, has another shape, or is not floating point.
    """
    cfg = detected.config
    config_file = _config_file(detected)
    for sae_name, shape in expected_shapes(cfg).items():
        found = _find(header, sae_name, layout)
        if found is None:
            if sae_name in layout.optional:
                continue
            raise InvalidInputError(
                f"{layout.weights} has no {sae_name} tensor, which a {cfg.architecture} SAE needs (it has "
                f"{', '.join(sorted(header)) or 'no tensors'}). The file is not the SAE {config_file} describes; "
                "export the complete SAE again."
            )
        stored, orientation = found
        info = header[stored]
        if info.dtype not in FLOAT_DTYPES:
            raise InvalidInputError(
                f"{layout.weights} stores {stored} as {info.dtype}; SAE weights must be floating point "
                f"({', '.join(FLOAT_DTYPES)}). Export the SAE again in one of them."
            )
        allowed = {"same": [shape], "transposed": [shape[::-1]], "either": [shape, shape[::-1]]}[orientation]
        if sae_name in layout.scalar_ok:
            allowed.append(())
        if info.shape not in allowed:
            raise InvalidInputError(
                f"{config_file} says d_in={cfg.d_in}, d_sae={cfg.d_sae}, so {stored} should be "
                f"{_dims(allowed[0])}, but {layout.weights} stores it as {_dims(info.shape)}"
                f"{_implied_dims(header, layout)}. The config does not describe these weights: correct "
                f"{config_file} or import the weights it was written for."
            )


def _check_finite(file: str, key: str, offset: int, block: torch.Tensor | np.ndarray,
                  shape: tuple[int, ...]) -> None:
    if isinstance(block, np.ndarray):
        if block.dtype.kind != "f":
            return
        bad = ~np.isfinite(block)
        count = int(bad.sum())
        first = int(np.argmax(bad)) if count else 0
    else:
        if not block.is_floating_point():
            return
        bad_t = ~torch.isfinite(block)
        count = int(bad_t.sum())
        first = int(torch.argmax(bad_t.to(torch.uint8))) if count else 0
    if count:
        where = np.unravel_index(offset + first, shape) if shape else ()
        index = ", ".join(str(int(i)) for i in where)
        raise InvalidInputError(
            f"{file}: tensor {key} holds NaN or infinite values (first at [{index}]); an SAE with them cannot "
            "produce meaningful activations. Fix or re-export the weights, then import them."
        )


def _block_bytes(block: torch.Tensor | np.ndarray) -> memoryview:
    if isinstance(block, np.ndarray):
        return np.ascontiguousarray(block).data.cast("B")
    flat = block.contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().data


def scan_values(root: Path, files: Sequence[str], opened: dict[str, _TensorFile]) -> str:
    """Stream every tensor once: refuse NaN/Inf in weight files, return the SHA-256 fingerprint of all tensors.

    Raises:
        InvalidInputError: a weight tensor holds NaN or Inf.
        CorruptFileError: a file cannot be read to its end.
    """
    digest = hashlib.sha256()
    for name in files:
        tensor_file = opened.get(name) or _TensorFile(root / name, name)
        check = name not in AUXILIARY_FILES
        digest.update(f"file:{name}\n".encode())
        current: str | None = None
        for key, offset, block in tensor_file.blocks():
            if key != current:
                info = tensor_file.header.get(key)
                digest.update(f"tensor:{key}:{info.dtype if info else ''}:{info.shape if info else ''}\n".encode())
                current = key
            if check:
                _check_finite(name, key, offset, block, info.shape if info else (len(block),))
            digest.update(_block_bytes(block))
    return digest.hexdigest()


def check_size(detected: DetectedSAE, tensor_bytes: int) -> None:
    """The tensor files hold at least the parameters the config describes (at 2 bytes each, the smallest float
    dtype): a config claiming huge widths over small files is refused before any reader allocates them.

    Raises:
        InvalidInputError: the config describes more parameters than the files can hold.
    """
    cfg = detected.config
    parameters = sum(math.prod(shape) for shape in expected_shapes(cfg).values())
    if 2 * parameters > tensor_bytes:
        raise InvalidInputError(
            f"{_config_file(detected)} says d_in={cfg.d_in}, d_sae={cfg.d_sae}: {parameters:,} parameters, more "
            f"than the {tensor_bytes:,} bytes of tensor files can hold. The config does not describe these weights: "
            "correct it or import the weights it was written for."
        )


def _read_with_reader(detected: DetectedSAE) -> None:
    """Load the SAE once with its format's own reader (small SAEs): the code path an extraction runs.

    Raises:
        MiStudioError: the reader refuses the files.
    """
    try:
        read_detected(detected)
    except MiStudioError:
        raise
    except Exception as exc:  # a reader failing on unexpected content is still a refused import
        raise CorruptFileError(f"the SAE's files could not be read ({type(exc).__name__}: {exc}); export the "
                               "SAE again, then import it") from None


def run_import_checks(detected: DetectedSAE, n_layers: int | None = None,
                      *, model_layers: Callable[[str | None], int | None] = model_layer_count) -> ImportReport:
    """Run every check on a detected SAE (its files in `detected.root`) and return the report.

    `n_layers`, when given, is the model's layer count; otherwise `model_layers(cfg.model_name)` looks it up
    locally.

    Raises:
        InvalidInputError: a tensor is missing / mis-shaped / not floating point / NaN or Inf, or the hook is not
            one miStudio can run.
        CorruptFileError: a file is truncated or unreadable.
    """
    cfg = detected.config
    checked: list[str] = []
    check_config(cfg, _config_file(detected))
    checked.append("config")
    if n_layers is None:
        n_layers = model_layers(cfg.model_name)
    hook_status, hook_message = check_hook(cfg, n_layers, where=_config_file(detected))
    checked.append("hook")
    files = _tensor_files(detected)
    opened = {name: _TensorFile(detected.root / name, name) for name in files}
    checked.append("headers")
    layout = _LAYOUTS.get(detected.format)
    if layout is not None and layout.weights in opened:
        check_tensors(detected, opened[layout.weights].header, layout)
        checked.append("shapes")
    fingerprint = scan_values(detected.root, files, opened)
    checked.append("values")
    total = sum((detected.root / name).stat().st_size for name in files)
    check_size(detected, total)
    checked.append("size")
    if total <= FULL_READ_MAX_BYTES or layout is None:
        _read_with_reader(detected)
        checked.append("reader")
    return ImportReport(fingerprint, hook_status, hook_message, n_layers, checked)
