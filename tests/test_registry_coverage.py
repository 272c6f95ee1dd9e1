"""Every loader family of SAELens's pretrained-SAE registry, end to end.

For each family (and each variant SAELens treats differently) a tiny fake repo with the real repo id and layout
(`fakes.registry_repos`) is served by the fake hub. `test_sae_lens_loads_the_fake` proves the fake faithful:
SAELens's own `SAE.from_pretrained(release, sae_id)` loads it. `test_family_end_to_end` then drives miStudio:
release-aware browse, download into a Studio catalog, the catalogued metadata and encode against SAELens, and an
extraction on a tiny random model of the family. Outcomes are written to `test-artifacts/registry_coverage.json`
(read by `scripts/coverage_table.py` for the README's coverage table).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fakes.fake_hub import FakeHub
from fakes.registry_repos import CASES, D_MODEL, RegistryCase, build_registry_repos
from huggingface_hub import constants

from mistudio.settings import reset_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = REPO_ROOT / "test-artifacts" / "registry_coverage.json"
N_INPUTS = 24
N_HEADS = 4  # the tiny models' attention heads (hook_z inputs are [..., n_heads, d_head] for SAELens)
# SAELens architecture → miStudio (activation, skip connection)
ARCHITECTURES = {"standard": ("standard", False), "jumprelu": ("jumprelu", False), "topk": ("topk", False),
                 "batchtopk": ("batchtopk", False), "gated": ("gated", False),
                 "transcoder": ("standard", False), "skip_transcoder": ("standard", True),
                 "jumprelu_transcoder": ("jumprelu", False), "jumprelu_skip_transcoder": ("jumprelu", True)}
CASE_PARAMS = [pytest.param(case, id=case.case_id) for case in CASES]

_results: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def registry_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    """The fake hub serving every registry family's repo; huggingface_hub's module constants (read from
    HF_ENDPOINT at import time, used by SAELens's `hf_hub_download` calls) point at it while it runs.

    Torch runs single-threaded meanwhile: on tensors this small, a second thread only adds contention."""
    root = tmp_path_factory.mktemp("registry-hub")
    build_registry_repos(root)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with FakeHub(root) as hub, pytest.MonkeyPatch.context() as mp:
            mp.setattr(constants, "ENDPOINT", hub.endpoint)
            mp.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                       hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
            mp.setattr(constants, "HF_HUB_CACHE", str(root.parent / "hf-cache"))
            yield hub
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module", autouse=True)
def coverage_results() -> Iterator[None]:
    """Merge this run's per-case outcomes into the results file (cases of `CASES` not run this time keep their
    last outcome; cases no longer in `CASES` are dropped)."""
    yield
    if not _results:
        return
    previous = json.loads(RESULTS_FILE.read_text()) if RESULTS_FILE.is_file() else {}
    known = {case.case_id for case in CASES}
    cases = {k: v for k, v in {**previous.get("cases", {}), **_results}.items() if k in known}
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps({"cases": dict(sorted(cases.items()))}, indent=2) + "\n")


@pytest.fixture
def hub_env(registry_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """HF_ENDPOINT (read by miStudio's settings) at the registry hub, no token, not offline."""
    for var in ("HF_TOKEN", "HF_HUB_OFFLINE", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", registry_hub.endpoint)
    reset_settings()
    return registry_hub


_sae_lens_cache: dict[str, Any] = {}


def sae_lens_load(case: RegistryCase) -> Any:
    """The SAE as SAELens loads it: `SAE.from_pretrained(release, sae_id)` through the release's own loader,
    given as config overrides only the dimensions that loader takes from the model or repo name."""
    if case.case_id in _sae_lens_cache:
        return _sae_lens_cache[case.case_id]
    from sae_lens import SAE  # type: ignore[import-untyped, unused-ignore]
    from sae_lens.loading.pretrained_sae_loaders import (  # type: ignore[import-untyped, unused-ignore]
        NAMED_PRETRAINED_SAE_LOADERS,
        get_conversion_loader_name,
    )

    loader = NAMED_PRETRAINED_SAE_LOADERS[get_conversion_loader_name(case.release)]
    dims = case.sae_lens_overrides

    def converter(**kwargs: Any) -> Any:
        return loader(**{**kwargs, "cfg_overrides": {**(kwargs.get("cfg_overrides") or {}), **dims}})

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sae = SAE.from_pretrained(case.release, case.sae_id, converter=converter)
    _sae_lens_cache[case.case_id] = sae.eval()
    return sae


def sae_lens_config_dims(case: RegistryCase) -> tuple[int, int]:
    """(d_in, d_sae) as SAELens's config-only loader (no weights downloaded) states them."""
    from sae_lens.loading.pretrained_sae_loaders import (  # type: ignore[import-untyped, unused-ignore]
        load_sae_config_from_huggingface,
    )

    cfg = load_sae_config_from_huggingface(case.release, case.sae_id)
    return int(cfg["d_in"]), int(cfg["d_sae"])


def _inputs(case: RegistryCase, d_in: int) -> torch.Tensor:
    return torch.randn(N_INPUTS, d_in, generator=torch.Generator().manual_seed(len(case.case_id)))


def _sae_lens_view(sae: Any, x: torch.Tensor) -> torch.Tensor:
    """x as SAELens's SAE takes it: [..., n_heads, d_head] for hook_z SAEs, [batch, seq, d] for temporal ones."""
    if sae.cfg.reshape_activations == "hook_z":
        return x.view(x.shape[0], N_HEADS, -1)
    if sae.cfg.architecture() == "temporal":
        return x.unsqueeze(0)
    return x


def _sae_lens_outputs(sae: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        view = _sae_lens_view(sae, x)
        feats = sae.encode(view).reshape(x.shape[0], -1)
        out = sae(view).reshape(x.shape[0], -1)
    return feats, out


def test_every_registry_family_has_a_case() -> None:
    """A family new to the installed registry gets no pass by omission; `extraction_as` names a real variant."""
    from sae_lens.loading.pretrained_saes_directory import (  # type: ignore[import-untyped, unused-ignore]
        get_pretrained_saes_directory,
    )

    families = {lookup.conversion_func or "saelens" for lookup in get_pretrained_saes_directory().values()}
    assert families == {case.family for case in CASES}
    assert len({case.case_id for case in CASES}) == len(CASES)
    runs = {(case.family, case.variant): case for case in CASES if case.extraction_as is None}
    for case in CASES:
        if case.extraction_as is not None:
            other = runs[(case.family, case.extraction_as)]
            assert other.model_family == case.model_family, case.case_id


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_sae_lens_loads_the_fake(hub_env: FakeHub, case: RegistryCase) -> None:
    """SAELens's own loader reads the fake repo: it is laid out as the loader expects, at the dimensions built."""
    sae = sae_lens_load(case)
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (case.d_in, case.d_sae)
    assert getattr(sae.cfg, "d_out", None) == case.d_out
    feats, out = _sae_lens_outputs(sae, _inputs(case, case.d_in))
    assert torch.isfinite(out).all() and feats.shape == (N_INPUTS, case.d_sae)
    assert 0 < (feats > 0).float().mean() < 1, "a fake whose features never (or always) fire proves little"


# ---- end to end --------------------------------------------------------------------------------------------
_tiny_models: dict[tuple[str, int], Path] = {}


def _tiny_model(root: Path, family: str, n_layers: int) -> Path:
    from mistudio.testing.tiny_models import build_tiny_model

    key = (family, n_layers)
    if key not in _tiny_models:
        _tiny_models[key] = build_tiny_model(family, root / f"{family}-{n_layers}", n_layers=n_layers,  # type: ignore[arg-type]
                                             d_model=D_MODEL)
    return _tiny_models[key]


def _expected_metadata(sae: Any) -> dict[str, Any]:
    meta = sae.cfg.metadata
    activation, skip = ARCHITECTURES.get(sae.cfg.architecture(), (sae.cfg.architecture(), False))
    from mistudio.saes.model import layer_from_hook_name

    return {"model_name": meta.model_name, "hook_name": meta.hook_name,
            "hook_layer": layer_from_hook_name(meta.hook_name), "hook_name_out": getattr(meta, "hook_name_out", None),
            "d_in": sae.cfg.d_in, "d_sae": sae.cfg.d_sae, "d_out": getattr(sae.cfg, "d_out", None),
            "architecture": activation, "skip_connection": skip,
            "model_from_pretrained_kwargs": meta.model_from_pretrained_kwargs or {}}


def _mistudio_metadata(cfg: Any) -> dict[str, Any]:
    # miStudio's batchtopk is SAELens's jumprelu: a per-feature threshold at inference
    architecture = "jumprelu" if cfg.architecture == "batchtopk" else cfg.architecture
    return {"model_name": cfg.model_name, "hook_name": cfg.hook_name, "hook_layer": cfg.hook_layer,
            "hook_name_out": getattr(cfg, "hook_name_out", None), "d_in": cfg.d_in, "d_sae": cfg.d_sae,
            "d_out": getattr(cfg, "d_out", None), "architecture": architecture,
            "skip_connection": getattr(cfg, "skip_connection", False),
            "model_from_pretrained_kwargs": cfg.model_from_pretrained_kwargs or {}}


def _hf_module(model: torch.nn.Module, path: str) -> tuple[torch.nn.Module, str]:
    """The module an HF hook path names (`model.layers.3.mlp.input`; a bare module path means its output) and
    which side of it; a multimodal checkpoint keeps the text model under `language_model`."""
    side = path.rsplit(".", 1)[1] if path.endswith((".input", ".output")) else "output"
    name = path.removesuffix(f".{side}")
    modules = dict(model.named_modules())
    if name in modules:
        return modules[name], side
    tail = name.removeprefix("model.")
    found = [m for n, m in modules.items() if n.endswith(f"language_model.{tail}")]
    assert len(found) == 1, f"no single module for {path!r} in {type(model).__name__}"
    return found[0], side


def _brute_force_max(oracle: Any, model_dir: Path, tokens: torch.Tensor, special: list[int]) -> torch.Tensor:
    """Each feature's largest activation over the extraction's windows (special tokens left out), from the HF
    model run by transformers with a forward hook at the module SAELens names, encoded by SAELens's SAE."""
    import transformers

    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    except ValueError:  # a multimodal checkpoint
        model = transformers.AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    module, side = _hf_module(model.eval(), oracle.cfg.metadata.hf_hook_name)
    captured: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        value = args[0] if side == "input" else output
        captured.append(value[0] if isinstance(value, tuple) else value)

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(input_ids=tokens.long())
    finally:
        handle.remove()
    acts = captured[0][~torch.isin(tokens.long(), torch.tensor(special, dtype=torch.long))]
    with torch.no_grad():
        return oracle.encode(acts.float()).max(dim=0).values


class _Stages:
    """Runs the named stages of one case in order and records where it stopped, and why."""

    def __init__(self, case: RegistryCase) -> None:
        self.case, self.stage = case, ""
        self.seconds: dict[str, float] = {}

    def run(self, name: str, step: Callable[[], Any]) -> Any:
        self.stage = name
        start = time.perf_counter()
        try:
            return step()
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 2)

    def record(self, error: BaseException | None) -> None:
        reason = "" if error is None else " ".join(f"{type(error).__name__}: {error}".split())[:500]
        _results[self.case.case_id] = {
            "family": self.case.family, "variant": self.case.variant, "release": self.case.release,
            "sae_id": self.case.sae_id, "repo_id": self.case.repo_id, "path": self.case.path,
            "passed": error is None, "stage": "done" if error is None else self.stage, "reason": reason,
            "seconds": self.seconds,
            **({"extraction_as": self.case.extraction_as} if self.case.extraction_as else {}),
        }


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_family_end_to_end(hub_env: FakeHub, case: RegistryCase, tmp_path: Path,
                           tmp_path_factory: pytest.TempPathFactory) -> None:
    """Browse the release, download the SAE into the catalog, compare metadata and encode with SAELens, and run
    an extraction on a tiny random model of the family (once per model family and hook of a loader family:
    `extraction_as` names the variant that runs it)."""
    from mistudio.catalog.service import load_sae_for, start_hf_download
    from mistudio.extraction.service import extract, get_store
    from mistudio.hub.releases import browse_release
    from mistudio.studio import Studio

    stages = _Stages(case)
    studio = Studio.open(home=tmp_path / "home")
    x = _inputs(case, case.d_in)

    def browse() -> None:
        listing = browse_release(case.release, endpoint=hub_env.endpoint)
        entry = next(s for s in listing.saes if s.id == case.sae_id)
        assert entry.hub is not None, f"browse found no SAE at {case.path!r}"
        assert entry.hub.error is None, entry.hub.error
        # a pickled weights file has no header to read over the Hub: there the dims may come from the names,
        # as SAELens's own config-only loader takes them
        allowed = {(oracle.cfg.d_in, oracle.cfg.d_sae)}
        if any(f.path.endswith((".pt", ".pth")) for f in entry.hub.files):
            allowed.add(sae_lens_config_dims(case))
        assert (entry.hub.d_in, entry.hub.d_sae) in allowed, f"browse dims not in {allowed}"

    def download() -> str:
        started = start_hf_download(studio, case.repo_id, case.path)
        job = studio.runner.run_inline(started.job_id)
        assert job.status == "completed", job.error_message
        return started.sae_id

    def metadata(sae_id: str) -> Any:
        sae = load_sae_for(studio, sae_id)
        ours, expected = _mistudio_metadata(sae.cfg), _expected_metadata(oracle)
        differ = {key: {"miStudio": ours[key], "SAELens": expected[key]} for key in expected
                  if ours[key] != expected[key]}
        assert not differ, f"catalogued config differs from SAELens's: {differ}"
        registry = sae.cfg.extra.get("registry", {})
        assert (registry.get("repo_id"), registry.get("path")) == (case.repo_id, case.path), registry
        return sae

    def encode(sae: Any) -> None:
        feats, out = _sae_lens_outputs(oracle, x)
        with torch.no_grad():
            torch.testing.assert_close(sae.encode(x), feats, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(sae(x), out, atol=1e-4, rtol=1e-4)

    def extraction(sae_id: str) -> None:
        model = _tiny_model(tmp_path_factory.getbasetemp(), case.model_family, case.n_layers)
        extraction_id = extract(studio, sae_id, str(model), "builtin:corpus", n_tokens=192, context_size=16,
                                top_k=3, batch_size=6, logit_k=5, logit_bins=10, n_intervals=2,
                                interval_examples=2)
        _, store = get_store(studio, sae_id, extraction_id)
        assert store.n_features == case.d_sae
        stats = store.read_part("statistics")
        assert int(stats["n_tokens"]) > 0 and torch.isfinite(stats["max"]).all()
        if getattr(oracle.cfg.metadata, "hf_hook_name", None):
            expected = _brute_force_max(oracle, model, store.windows()["tokens"], store.manifest["special_token_ids"])
            assert (expected > 0).any(), "no feature fires on the tiny model: the comparison would prove little"
            found = torch.where(stats["count"] > 0, stats["max"], torch.zeros(()))
            torch.testing.assert_close(found, expected.clamp(min=0), atol=1e-4, rtol=1e-4)

    error: BaseException | None = None
    try:
        oracle = stages.run("sae_lens", lambda: sae_lens_load(case))
        stages.run("browse", browse)
        sae_id = stages.run("download", download)
        sae = stages.run("metadata", lambda: metadata(sae_id))
        stages.run("encode", lambda: encode(sae))
        if case.extraction_as is None:
            stages.run("extraction", lambda: extraction(sae_id))
    except BaseException as exc:
        error = exc
        raise
    finally:
        stages.record(error)
