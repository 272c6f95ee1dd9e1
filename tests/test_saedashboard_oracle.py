"""What we send to Neuronpedia against SAEDashboard's own Neuronpedia pipeline, field by field.

The reference (tests/saedashboard_reference.py) runs SAEDashboard's `SaeVisRunner` and `NeuronpediaConverter` the
way `NeuronpediaRunner.run` does, on a TransformerLens copy of the tiny model processed as the runner's
`from_pretrained(**model_from_pretrained_kwargs)` processes it, the SAE as SAELens loads and folds it from our SAELens
folder, and exactly the token windows of our extraction. Ours is the
extraction's Neuronpedia data (`dashboards.neuronpedia.neuronpedia_feature`), the export's SAEDashboard batch files
and its bulk-import rows.

Tolerances, each from a source we can name:
* Rounding: SAEDashboard writes values with `np.round(…, 3)` (sequence values after `round(…, 4)`), titles with
  `.3f` / `.3%`. The two sides compute activations on different code paths (HF modules vs TransformerLens, our
  encoder vs SAELens's), equal to ~1e-6; a value within that of a rounding boundary may round either way, so
  rounded floats compare within 1e-3 + 1e-9 (one unit in the last place). Numbers that go through a title
  (`bin_min`, `bin_max`) must be equal, unless the unrounded value lies within that noise of a rounding boundary.
* Counts (histogram bars, `frac_nonzero`, `bin_contains`, band sizes): a value within float noise (1e-5) of a bin
  edge, of a band edge or of zero may be counted on either side; the allowed difference is the number of such
  borderline values, computed from the reference activations.
* Pearson correlations: SAEDashboard's `RollingCorrCoef` evaluates `n·Σxy − Σx·Σy` in float32, which cancels; we
  allow SAEDashboard's own error against an exact float64 computation, plus the rounding unit.
* Ordering: where two candidates of a top-k (logits, decoder weights, correlations, windows) are equal to 1e-5,
  either order is right; indices compare as sets within such ties.
Deliberate differences (docs/neuronpedia-conventions.md): one top example per window (SAEDashboard ranks positions,
so a window can appear more than once), and token strings as decoded text (SAEDashboard writes raw byte-level
pieces) — tokens compare through the token ids.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("sae_dashboard")
pytest.importorskip("transformer_lens")
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

from sae_factories import make_sae  # noqa: E402
from saedashboard_reference import (  # noqa: E402
    Reference,
    band_edges,
    ignore_tokens,
    load_lens_sae,
    reference_activations,
    saedashboard_features,
)

from mistudio.datasets.sources import load_texts  # noqa: E402
from mistudio.datasets.windows import tokenize_windows  # noqa: E402
from mistudio.export.archive.jsonio import render_tokens  # noqa: E402
from mistudio.extraction.engine import ExtractionSettings, run_extraction  # noqa: E402
from mistudio.extraction.sae_inputs import input_transforms  # noqa: E402
from mistudio.lm.loading import LoadedModel, load_model  # noqa: E402
from mistudio.saes.formats import write_saelens  # noqa: E402
from mistudio.saes.model import SAE  # noqa: E402
from mistudio.store.feature_store import FeatureStore  # noqa: E402
from mistudio.testing.tiny_models import build_tiny_model, default_corpus  # noqa: E402

D_SAE, N_WINDOWS, CONTEXT = 64, 32, 32
# more than NeuronpediaRunner's 128 features per batch: two batches of 65 (np.array_split), so correlated_features
# and the batch files are checked across a batch boundary
D_SAE_OF = {"gpt2-standard-resid": 130}
ROUND = 1e-3 + 1e-9  # one unit of the 3 decimals SAEDashboard writes
NOISE = 1e-5  # how far the two code paths' activations may differ (HF vs TransformerLens, ours vs SAELens)
Render = Callable[[list[str]], list[str]]  # how an output writes token strings (the reader: as is)
TIE = 1e-5  # candidates of a top-k this close (relative to their size) may come in either order


def near(a: float, b: float, tol: float = TIE) -> bool:
    """Equal to `tol`, relative to the values' size (float32 noise grows with the magnitude)."""
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


# case → (model family, architecture, hook, SAE options, model_from_pretrained_kwargs). NeuronpediaRunner processes
# the model as TransformerLens's from_pretrained does unless these kwargs say otherwise; SAELens trains on
# from_pretrained_no_processing(**kwargs). The two see the same activations for RMSNorm models (Gemma-2 here) and for
# LayerNorm models whose SAE asks for center_writing_weights (and fold_value_biases, for hook_z): those are the cases
# where Neuronpedia's own pipeline shows what the SAE was trained on (docs/neuronpedia-conventions.md).
CASES: dict[str, tuple[str, str, str, dict[str, Any], dict[str, Any]]] = {
    "gemma2-jumprelu-resid": ("gemma2", "jumprelu", "blocks.1.hook_resid_pre", {}, {}),
    "gpt2-standard-resid": ("gpt2", "standard", "blocks.0.hook_resid_post", {}, {"center_writing_weights": True}),
    "gpt2-jumprelu-attn_z": ("gpt2", "jumprelu", "blocks.1.attn.hook_z", {},
                             {"fold_ln": True, "center_writing_weights": True, "fold_value_biases": True}),
    "gpt2-topk-rescaled": ("gpt2", "topk", "blocks.0.hook_resid_post", {"rescale_acts_by_decoder_norm": True},
                           {"center_writing_weights": True}),
}


@dataclass
class Setup:
    """One SAE on one model: our extraction and SAEDashboard's reference on the same windows."""

    loaded: LoadedModel
    tl: Any  # the HookedTransformer SAEDashboard ran on (processed as NeuronpediaRunner processes it)
    sae: SAE
    sae_dir: Path
    store: FeatureStore
    tokens: torch.Tensor  # [n_windows, context] (the store's windows)
    ref: Reference
    acts: np.ndarray  # [n_windows, context, d_sae] folded + masked (independent encode)
    raw_acts: np.ndarray  # the same, unmasked (what the correlations see)
    hook_acts: np.ndarray  # [n_windows, context, d_in] the hook's activations (what the correlations see)
    decoder: np.ndarray  # [d_sae, d_in] SAELens's folded decoder
    logits: np.ndarray  # [d_sae, d_vocab] folded decoder rows through the runner model's unembedding
    # per rendering of the token strings: the strings of positions 1.. → their window
    window_strings: dict[str, dict[tuple[str, ...], int]] = field(default_factory=dict)
    sd_vocab: dict[int, str] | None = None  # NeuronpediaRunner.get_vocab_dict


_MODELS: dict[str, tuple[Path, LoadedModel]] = {}


def _scale_unembedding(path: Path, factor: float) -> None:
    """Give the random tiny model logits of a real model's size (±several units): SAEDashboard's histogram tick
    computation (`HistogramData.from_data`, "5 ticks") makes ~|min|/1e-6 ticks when every logit is below 0.3."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(factor)  # tied: the input embeddings scale with it
    model.save_pretrained(path)


def _model(family: str, root: Path) -> tuple[Path, LoadedModel]:
    if family not in _MODELS:  # the folder name must not contain "gemma"/"llama" (TransformerLens reads it)
        path = build_tiny_model(family, root / f"tiny-{len(_MODELS)}", n_layers=2, d_model=64)
        _scale_unembedding(path, 20.0)
        _MODELS[family] = (path, load_model(path, device="cpu", dtype="float32"))
    return _MODELS[family]


def build_setup(case: str, root: Path, *, fold: bool = True, sae_options: dict[str, Any] | None = None) -> Setup:
    """Our extraction of the case's SAE on its tiny model, and SAEDashboard's run on the extraction's windows
    (`fold=False`: SAEDashboard with the fold skipped, for SAEs SAELens refuses to fold)."""
    family, arch, hook, options, kwargs = CASES[case]
    options = sae_options if sae_options is not None else options
    path, loaded = _model(family, root)
    sae = make_sae(arch, d_in=loaded.d_model, d_sae=D_SAE_OF.get(case, D_SAE), seed=7, hook_name=hook,
                   model_name="tiny", **options)
    sae.cfg.model_from_pretrained_kwargs = dict(kwargs)
    sae_dir = write_saelens(sae, root / f"sae-{case}-{arch}")
    corpus = root / "corpus.txt"
    if not corpus.exists():
        corpus.write_text("\n\n".join(default_corpus(240, seed=3)))
    windows = tokenize_windows(load_texts(corpus), loaded.tokenizer, context_size=CONTEXT, n_windows=N_WINDOWS,
                               prepend_bos=True, seed=5)
    transforms = input_transforms(loaded, sae)
    store = run_extraction(loaded, sae, windows, root / f"store-{case}-{arch}",
                           settings=ExtractionSettings(top_k=20, batch_size=16, logit_k=10),
                           transform=transforms.transform)
    tokens = store.windows()["tokens"].long()
    ref = saedashboard_features(path, loaded, sae_dir, tokens, fold=fold)
    tl = ref.model
    raw, hook_acts = reference_activations(tl, sae_dir, tokens, fold=fold, masked=False)
    keep = ~np.isin(tokens.numpy(), sorted(ignore_tokens(tl)))
    decoder, logits = _reference_weights(tl, sae_dir, hook, fold)
    return Setup(loaded, tl, sae, sae_dir, store, tokens, ref, raw.numpy() * keep[..., None], raw.numpy(),
                 hook_acts.numpy(), decoder, logits)


_SETUPS: dict[str, Setup] = {}


def setup_for(case: str, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """`build_setup(case)`, once per test session."""
    if case not in _SETUPS:
        _SETUPS[case] = build_setup(case, tmp_path_factory.mktemp("oracle"))
    return _SETUPS[case]


@pytest.fixture(scope="module", params=list(CASES))
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return setup_for(request.param, tmp_path_factory)


def ours(setup: Setup, index: int) -> dict[str, Any]:
    from mistudio.dashboards.neuronpedia import neuronpedia_feature

    return dict(neuronpedia_feature(setup.store, index))


# ----- comparison helpers ------------------------------------------------------------------------------------------


def assert_rounded(got: Any, want: Any, what: str) -> None:
    """Floats written with 3 decimals: equal within one unit (see the module docstring)."""
    got_a, want_a = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got_a.shape == want_a.shape, f"{what}: {got_a.shape} values, SAEDashboard {want_a.shape}"
    bad = np.abs(got_a - want_a) > ROUND
    assert not bad.any(), f"{what}: ours {got_a[bad][:5]} vs SAEDashboard {want_a[bad][:5]}"


def assert_title_number(got: float, want: float, unrounded: float, what: str, decimals: int = 3) -> None:
    """A number SAEDashboard formats into a title (`.3f`) and parses back: exactly equal, unless the unrounded
    value lies within float noise of a rounding boundary (then one unit either way)."""
    scaled = unrounded * 10**decimals
    at_boundary = abs(scaled - math.floor(scaled) - 0.5) <= NOISE * max(1.0, abs(unrounded)) * 10**decimals
    if at_boundary:
        assert abs(got - want) <= 10**-decimals + 1e-9, f"{what}: {got} vs SAEDashboard {want}"
    else:
        assert got == pytest.approx(want, abs=1e-12), f"{what}: {got} vs SAEDashboard {want}"


def borderline(values: np.ndarray, edges: np.ndarray) -> int:
    """How many of `values` lie within float noise of any of `edges`."""
    if values.size == 0 or edges.size == 0:
        return 0
    return int((np.abs(values[:, None] - edges[None, :]) <= NOISE * np.maximum(1.0, np.abs(edges))).sum())


def assert_counts(got: list[float], want: list[float], slack: int, what: str) -> None:
    got_a, want_a = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got_a.shape == want_a.shape, f"{what}: {got_a.shape} bars, SAEDashboard {want_a.shape}"
    diff = int(np.abs(got_a - want_a).sum())
    assert diff <= 2 * slack, f"{what}: counts differ by {diff} (borderline values {slack}): {got_a} vs {want_a}"


def assert_topk(got_idx: list[int], got_val: list[float], want_idx: list[int], want_val: list[float],
                exact_values: np.ndarray | None, what: str, *, value_tol: float = ROUND) -> None:
    """Top-k indices equal, except that near-equal candidates may swap; values within `value_tol`."""
    assert len(got_idx) == len(want_idx), f"{what}: {len(got_idx)} entries, SAEDashboard {len(want_idx)}"
    got_v, want_v = np.asarray(got_val, dtype=np.float64), np.asarray(want_val, dtype=np.float64)
    assert np.all(np.abs(got_v - want_v) <= value_tol), f"{what}: values {got_v} vs SAEDashboard {want_v}"
    for k, (g, w) in enumerate(zip(got_idx, want_idx, strict=True)):
        if g == w:
            continue
        if exact_values is None:
            raise AssertionError(f"{what}: index {k} is {g}, SAEDashboard {w}")
        # a swap is right only when the two candidates are equal to the tolerance
        assert near(float(exact_values[g]), float(exact_values[w]), max(TIE, value_tol)), (
            f"{what}: index {k} is {g} ({exact_values[g]:.6f}), SAEDashboard {w} ({exact_values[w]:.6f})")


def vocab_of(setup: Setup) -> list[str]:
    return setup.store.vocab


def saedashboard_vocab(setup: Setup) -> dict[int, str]:
    """NeuronpediaRunner's token strings (raw pieces, a few HTML anomalies replaced)."""
    import types

    from sae_dashboard.neuronpedia.neuronpedia_runner import NeuronpediaRunner

    if setup.sd_vocab is None:
        setup.sd_vocab = NeuronpediaRunner.get_vocab_dict(types.SimpleNamespace(model=setup.tl))  # type: ignore
    return setup.sd_vocab


def saedashboard_pieces(setup: Setup) -> Render:
    """A `Render` giving SAEDashboard's string of every token id (to find the windows of its examples)."""
    pieces = saedashboard_vocab(setup)

    def saedashboard_strings(vocab: list[str]) -> list[str]:
        return [pieces[t] for t in range(len(vocab))]

    return saedashboard_strings


def ref_logit_ids(setup: Setup, index: int) -> tuple[list[int], list[int]]:
    """SAEDashboard's own top/bottom logit token ids, recovered from its raw-piece strings through its vocabulary
    dict (checked unambiguous)."""
    vocab_dict = saedashboard_vocab(setup)
    by_piece: dict[str, list[int]] = defaultdict(list)
    for tid, piece in vocab_dict.items():
        by_piece[piece].append(tid)
    feat = setup.ref.features[index]

    def ids(pieces: list[str]) -> list[int]:
        out = []
        for p in pieces:
            assert len(by_piece[p]) == 1, f"SAEDashboard's piece {p!r} names tokens {by_piece[p]}"
            out.append(by_piece[p][0])
        return out

    return ids(feat["pos_str"]), ids(feat["neg_str"])


def logit_vector(setup: Setup, index: int) -> np.ndarray:
    """The Neuronpedia logit lens written out: folded decoder row → residual direction → the runner model's W_U."""
    return setup.logits[index]


def _reference_weights(tl: Any, sae_dir: Path, hook: str, fold: bool) -> tuple[np.ndarray, np.ndarray]:
    """SAELens's folded decoder `[d_sae, d_in]` and each row's logits `[d_sae, d_vocab]` (float64)."""
    with torch.no_grad():
        rows = load_lens_sae(sae_dir, fold=fold).W_dec.detach().double()
        resid = rows
        layer = int(hook.split(".")[1])
        if "hook_z" in hook:
            resid = rows @ tl.W_O[layer].flatten(0, 1).double()
        return rows.numpy(), (resid @ tl.W_U.double()).numpy()


# ----- per-field checks ---------------------------------------------------------------------------------------------


def check_scalars_and_histograms(setup: Setup, index: int, got: dict[str, Any], ref: dict[str, Any]) -> None:
    col = setup.acts[..., index]
    n_positions = col.size
    # frac_nonzero: positives over ALL positions, through the `.3%` title (5 decimals)
    flips = int((np.abs(col) <= NOISE).sum() - (col == 0).sum())
    assert abs(got["frac_nonzero"] - ref["frac_nonzero"]) <= flips / n_positions + 1e-12, (
        f"frac_nonzero {got['frac_nonzero']} vs SAEDashboard {ref['frac_nonzero']} ({flips} values near 0)")
    nz = col[col > 0]
    if nz.size == 0:
        assert got["freq_hist_data_bar_heights"] == ref["freq_hist_data_bar_heights"] == []
        return
    # activation histogram: 50 equal bins over [min, max] of the non-zero masked acts
    assert_rounded(got["freq_hist_data_bar_values"], ref["freq_hist_data_bar_values"], "freq_hist_data_bar_values")
    edges = np.linspace(nz.min(), nz.max(), 51)[1:-1]
    assert_counts(got["freq_hist_data_bar_heights"], ref["freq_hist_data_bar_heights"],
                  borderline(nz, edges) + flips, "freq_hist_data_bar_heights")


def _token_ids(strings: list[str], want_ids: list[int], logits: np.ndarray, rendered: list[str],
               what: str) -> list[int]:
    """Our token strings as ids: SAEDashboard's token where its string is ours, else the token with that string
    (decoded text can be shared by several ids) whose logit is closest (assert_topk then checks it is a tie)."""
    out = []
    for k, (string, want) in enumerate(zip(strings, want_ids, strict=True)):
        if rendered[want] == string:
            out.append(want)
            continue
        candidates = [t for t, r in enumerate(rendered) if r == string]
        assert candidates, f"{what}[{k}] {string!r} is no token's string"
        out.append(min(candidates, key=lambda t: abs(logits[t] - logits[want])))
    return out


def check_logits(setup: Setup, index: int, got: dict[str, Any], ref: dict[str, Any], render: Render = list) -> None:
    logits = logit_vector(setup, index)
    pos_ids, neg_ids = ref_logit_ids(setup, index)
    rendered = render(vocab_of(setup))
    assert_rounded(got["pos_values"], ref["pos_values"], "pos_values")
    assert_rounded(got["neg_values"], ref["neg_values"], "neg_values")
    # strings: ours decoded text, SAEDashboard raw pieces; both through the token ids
    got_pos = _token_ids(got["pos_str"], pos_ids, logits, rendered, "pos_str")
    got_neg = _token_ids(got["neg_str"], neg_ids, logits, rendered, "neg_str")
    assert_topk(got_pos, got["pos_values"], pos_ids, ref["pos_values"], logits, "pos_str")
    assert_topk(got_neg, got["neg_values"], neg_ids, ref["neg_values"], -logits, "neg_str")
    # logits histogram: 50 equal bins over the whole vocabulary's logits
    assert_rounded(got["logits_hist_data_bar_values"], ref["logits_hist_data_bar_values"],
                   "logits_hist_data_bar_values")
    edges = np.linspace(logits.min(), logits.max(), 51)[1:-1]
    assert_counts(got["logits_hist_data_bar_heights"], ref["logits_hist_data_bar_heights"],
                  borderline(logits, edges), "logits_hist_data_bar_heights")


def _pearson64(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact Pearson correlation of x [N] with each column of y [N, M] (float64)."""
    x = x.astype(np.float64) - x.mean()
    y = y.astype(np.float64) - y.mean(axis=0)
    denom = np.sqrt((x * x).sum() * (y * y).sum(axis=0))
    return np.where(denom > 0, (x[:, None] * y).sum(axis=0) / np.where(denom > 0, denom, 1), 0.0)


def check_tables(setup: Setup, index: int, got: dict[str, Any], ref: dict[str, Any]) -> None:
    row = setup.decoder[index]
    # neuron alignment: the 3 largest folded decoder weights, their share of the row's L1 norm
    assert_topk(got["neuron_alignment_indices"], got["neuron_alignment_values"], ref["neuron_alignment_indices"],
                ref["neuron_alignment_values"], row, "neuron_alignment_indices")
    assert_rounded(got["neuron_alignment_l1"], ref["neuron_alignment_l1"], "neuron_alignment_l1")
    # correlations over every position, unmasked folded acts
    x = setup.raw_acts[..., index].reshape(-1)
    if np.allclose(x, x[0]):  # a constant feature correlates with nothing: SAEDashboard's values are all 0
        return
    neurons = setup.hook_acts.reshape(x.size, -1)
    batch = next(b for b in setup.ref.feature_batches if index in b)
    features = setup.raw_acts.reshape(x.size, -1)[:, batch]
    for name, y, ids in (("correlated_neurons", neurons, list(range(neurons.shape[1]))),
                         ("correlated_features", features, batch)):
        exact = _pearson64(x, y)
        if name == "correlated_features":
            exact[batch.index(index)] = 0.0  # SAEDashboard zeroes the diagonal
        want_idx = ref[f"{name}_indices"]
        want_exact = np.asarray([exact[ids.index(i)] for i in want_idx])
        sae_dashboard_error = float(np.abs(np.asarray(ref[f"{name}_pearson"]) - want_exact).max(initial=0.0))
        tol = sae_dashboard_error + ROUND
        by_id = np.zeros(max(ids) + 1)
        by_id[ids] = exact
        assert_topk(got[f"{name}_indices"], got[f"{name}_pearson"], want_idx, ref[f"{name}_pearson"], by_id,
                    f"{name}_indices", value_tol=tol)
        assert_rounded(got[f"{name}_l1"], ref[f"{name}_l1"], f"{name}_l1")


def _groups(activations: list[dict[str, Any]]) -> dict[tuple[float, float], list[dict[str, Any]]]:
    out: dict[tuple[float, float], list[dict[str, Any]]] = defaultdict(list)
    for a in activations:
        key = (-1.0, -1.0) if a["bin_min"] == -1 else (float(a["bin_min"]), float(a["bin_max"]))
        out[key].append(a)
    return out


def window_of(setup: Setup, act: dict[str, Any], render: Render = list) -> int:
    """The window an example shows: its `window_index` when it has one, else found from its tokens."""
    if act.get("window_index") is not None:
        return int(act["window_index"])
    key = getattr(render, "__name__", str(render))
    if key not in setup.window_strings:
        rendered = render(vocab_of(setup))
        setup.window_strings[key] = {}
        for w, row in enumerate(setup.tokens.tolist()):
            setup.window_strings[key].setdefault(tuple(rendered[t] for t in row[1:]), w)
    window = setup.window_strings[key].get(tuple(act["tokens"]))
    assert window is not None, f"an example's tokens match no window: {act['tokens'][:8]}"
    return window


def check_examples(setup: Setup, index: int, got: dict[str, Any], ref: dict[str, Any], render: Render = list) -> None:
    col = setup.acts[..., index]
    vocab = render(vocab_of(setup))
    got_groups, ref_groups = _groups(got["activations"]), _groups(ref["activations"])
    # --- the top group: SAEDashboard's 20 top positions, ours one example per window
    ref_top = ref_groups.get((-1.0, -1.0), [])
    got_top = got_groups.get((-1.0, -1.0), [])
    if not ref_top or col.max() <= 0:
        assert not got_top or all(max(a["values"]) <= 0 for a in got_top)
        return
    ref_windows: list[int] = []
    for a in ref_top:
        w = window_of(setup, a, saedashboard_pieces(setup))
        if a["values"][a["qualifying_token_index"]] > 0 and w not in ref_windows:
            ref_windows.append(w)
    got_windows = [window_of(setup, a, render) for a in got_top]
    assert len(got_windows) == len(set(got_windows)), "the top group shows a window twice"
    active_windows = int((col.max(axis=1) > 0).sum())
    assert len(got_windows) == min(20, active_windows), (
        f"{len(got_windows)} top examples; {active_windows} windows are active")
    # a window's first position in SAEDashboard's ranking is its maximum, so its distinct windows come in the order
    # of their maxima: ours must be the same windows, except that windows with equal maxima (a causal model gives
    # windows that share a prefix equal activations) may come in either order, also across the cut at 20 positions
    window_max = col.max(axis=1)
    head = got_windows[:len(ref_windows)]
    assert len(head) == len(ref_windows) and all(near(window_max[g], window_max[w]) for g, w in zip(
        head, ref_windows, strict=True)), f"top windows {head} vs SAEDashboard's distinct windows {ref_windows}"
    assert_title_number(got_top[0]["bin_max"], ref_top[0]["bin_max"], float(col.max()), "top group bin_max")
    ref_by_window = {window_of(setup, a, saedashboard_pieces(setup)): a for a in ref_top}
    for a in got_top:
        w = window_of(setup, a, render)
        check_one_example(setup, index, a, w, vocab)
        assert a["bin_min"] == -1 and a["bin_contains"] == -1
        if w in ref_by_window:
            r = ref_by_window[w]
            assert_rounded(a["values"], r["values"], f"top example values (window {w})")
            peak = int(np.argmax(col[w]))
            assert a["qualifying_token_index"] == peak - 1 or near(col[w, a["qualifying_token_index"] + 1],
                                                                   col[w, peak])
    # --- the quantile bands: 5 equal intervals of [0, max], highest first
    edges = band_edges(float(col.max()))
    for lo, hi in edges:
        in_band = int(((col >= lo) & (col <= hi)).sum())
        slack = borderline(col.reshape(-1), np.asarray([lo, hi]))
        ref_band, got_band = _band(ref_groups, lo, hi), _band(got_groups, lo, hi)
        assert len(ref_band) == min(5, in_band), "the harness's bands are not SAEDashboard's"
        assert abs(len(got_band) - min(5, in_band)) <= slack, (
            f"band [{lo:.3f}, {hi:.3f}]: {len(got_band)} examples, SAEDashboard {len(ref_band)} (= min(5, {in_band}))")
        if not got_band or not ref_band:
            continue  # an empty band has no examples, so no group on either side
        assert abs(got_band[0]["bin_contains"] - ref_band[0]["bin_contains"]) <= slack / col.size + 1e-12, (
            f"band [{lo:.3f}, {hi:.3f}] bin_contains {got_band[0]['bin_contains']} vs {ref_band[0]['bin_contains']}")
        picked = [(window_of(setup, a, render), a["qualifying_token_index"]) for a in got_band]
        assert len(set(picked)) == len(picked), f"band [{lo:.3f}, {hi:.3f}] shows a position twice: {picked}"
        for a in got_band:
            assert_title_number(a["bin_min"], ref_band[0]["bin_min"], lo, "bin_min")
            assert_title_number(a["bin_max"], ref_band[0]["bin_max"], hi, "bin_max")
            assert a["bin_contains"] == got_band[0]["bin_contains"]
        for a in got_band:
            w = window_of(setup, a, render)
            q = a["qualifying_token_index"]
            slack_v = NOISE * max(1.0, hi)
            assert lo - slack_v <= col[w, q + 1] <= hi + slack_v, f"band [{lo}, {hi}] example value {col[w, q + 1]}"
            check_one_example(setup, index, a, w, vocab)
    n_bands = sum(1 for k in got_groups if k != (-1.0, -1.0))
    assert n_bands <= len(edges), f"{n_bands} interval groups, at most {len(edges)}"


def _band(groups: dict[tuple[float, float], list[dict[str, Any]]], lo: float, hi: float) -> list[dict[str, Any]]:
    """The examples of the group whose `.3f` bounds are those of [lo, hi] (within a rounding unit)."""
    for (g_lo, g_hi), acts in groups.items():
        if g_lo != -1.0 and abs(g_lo - lo) <= ROUND + NOISE * hi and abs(g_hi - hi) <= ROUND + NOISE * hi:
            return acts
    return []


def check_one_example(setup: Setup, index: int, act: dict[str, Any], window: int, vocab: list[str]) -> None:
    """Positions 1..C-1 of the window: tokens (through the ids) and values (an independent encode)."""
    ids = setup.tokens[window, 1:].tolist()
    if act.get("token_ids") is not None:
        assert list(act["token_ids"]) == ids
    assert list(act["tokens"]) == [vocab[t] for t in ids]
    assert_rounded(act["values"], np.round(setup.acts[window, 1:, index].astype(np.float64), 3),
                   f"example values (window {window})")


def check_feature(setup: Setup, index: int, got: dict[str, Any], render: Render = list) -> None:
    """Every Neuronpedia field of feature `index` of ours (`got`, token strings written by `render`) against
    SAEDashboard's."""
    ref = setup.ref.features[index]
    check_scalars_and_histograms(setup, index, got, ref)
    check_logits(setup, index, got, ref, render)
    check_tables(setup, index, got, ref)
    check_examples(setup, index, got, ref, render)


# ----- the tests ----------------------------------------------------------------------------------------------------


def test_reference_is_self_consistent(setup: Setup) -> None:
    """The harness's independent encode agrees with what SAEDashboard computed (so the checks below measure us)."""
    for index in range(setup.sae.cfg.d_sae):
        ref = setup.ref.features[index]
        col = setup.acts[..., index]
        assert ref["frac_nonzero"] == pytest.approx(round((col > 0).mean(), 5), abs=1e-5 + 1 / col.size)
        top = [a for a in ref["activations"] if a["bin_min"] == -1]
        if col.max() > 0:
            assert top[0]["bin_max"] == pytest.approx(float(f"{col.max():.3f}"), abs=ROUND)
        logits = logit_vector(setup, index)
        pos_ids, neg_ids = ref_logit_ids(setup, index)
        want_pos = np.argsort(-logits, kind="stable")[:10].tolist()
        want_neg = np.argsort(logits, kind="stable")[:10].tolist()
        assert_topk(want_pos, np.round(logits[want_pos], 3), pos_ids, ref["pos_values"], logits, "pos_str")
        assert_topk(want_neg, np.round(logits[want_neg], 3), neg_ids, ref["neg_values"], -logits, "neg_str")


def test_neuronpedia_fields_equal_saedashboard(setup: Setup) -> None:
    for index in range(setup.sae.cfg.d_sae):
        check_feature(setup, index, ours(setup, index))


def test_topk_cosine_similarities(setup: Setup) -> None:
    """Not in SAEDashboard: Neuronpedia's `util/sae-topk-by-decoder-cossim` (top 10 by cosine, itself included)."""
    w = setup.sae.W_dec.detach().double()
    w = w / w.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    cos = (w @ w.T).numpy()
    for index in range(setup.sae.cfg.d_sae):
        got = ours(setup, index)
        want = np.argsort(-cos[index], kind="stable")[:10].tolist()
        assert_topk(got["topk_cos_sim_indices"], got["topk_cos_sim_values"], want, cos[index, want].tolist(),
                    cos[index], "topk_cos_sim_indices")
        assert got["topk_cos_sim_indices"][0] == index


def test_plain_topk_is_unfoldable_and_compared_unfolded(tmp_path: Path) -> None:
    """SAELens refuses to fold a topk SAE without `rescale_acts_by_decoder_norm` (SAEDashboard's runner then
    fails); our Neuronpedia data leaves such SAEs unfolded (factor 1), which equals SAEDashboard's computation with
    the fold skipped."""
    case = "gpt2-topk-rescaled"
    sae_dir = write_saelens(make_sae("topk", d_in=64, d_sae=D_SAE, seed=7, hook_name=CASES[case][2]),
                            tmp_path / "plain-topk")
    with pytest.raises(NotImplementedError, match="Folding W_dec_norm is not safe"):
        load_lens_sae(sae_dir)
    plain = build_setup(case, tmp_path, fold=False, sae_options={})
    for index in range(plain.sae.cfg.d_sae):
        check_feature(plain, index, ours(plain, index))


# ----- the export: SAEDashboard batch files and Neuronpedia's bulk-import rows --------------------------------------


def _export(setup: Setup, out: Path) -> dict[str, Any]:
    """Export the extraction with the `neuronpedia` preset plus SAEDashboard batch files; the archive's JSON."""
    import gzip
    import json
    import zipfile

    from mistudio.dashboards.reader import StoreDashboards
    from mistudio.export.config import make_config
    from mistudio.export.pipeline import ExportInputs, SAEInfo, build_export
    from mistudio.export.source import StoreNeuronpedia

    cfg = make_config("neuronpedia", saedashboard_batches=True, model_id="tiny-model", dataset_id="tiny/corpus",
                      workers=1)
    inputs = ExportInputs(source=StoreDashboards(setup.store), info=SAEInfo.from_sae(setup.sae, "oracle"),
                          sae=setup.sae, neuronpedia=StoreNeuronpedia(setup.store))
    build_export(inputs, cfg, out / "export.zip", out / "work")
    with zipfile.ZipFile(out / "export.zip") as zf:
        names = zf.namelist()
        batches = [json.loads(zf.read(n)) for n in names if n.startswith("neuronpedia/batch-")]
        rows = {kind: [json.loads(line) for n in names if "/exports/" in n and f"/{kind}/batch-" in n
                       for line in gzip.decompress(zf.read(n)).splitlines()]
                for kind in ("features", "activations")}
    return {"batches": batches, "rows": rows}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Setup, dict[str, Any]]:
    setup = setup_for("gpt2-standard-resid", tmp_path_factory)
    return setup, _export(setup, tmp_path_factory.mktemp("export"))


def test_saedashboard_batch_files_equal_saedashboard(exported: tuple[Setup, dict[str, Any]]) -> None:
    """`neuronpedia/batch-{k}.json`: SAEDashboard's NeuronpediaDashboardBatch, every feature as SAEDashboard's."""
    setup, archive = exported
    assert archive["batches"], "the export wrote no SAEDashboard batch files"
    for batch, ref_batch in zip(archive["batches"], setup.ref.batches, strict=False):
        assert set(batch) == set(ref_batch), f"batch keys {sorted(set(batch) ^ set(ref_batch))} differ"
    assert sorted(sorted(f["feature_index"] for f in b["features"]) for b in archive["batches"]) == sorted(
        setup.ref.feature_batches), "the batch files do not split the features as NeuronpediaRunner does"
    features = {f["feature_index"]: f for b in archive["batches"] for f in b["features"]}
    assert sorted(features) == list(range(setup.sae.cfg.d_sae))
    ref_keys = set(setup.ref.features[0])
    for index, feat in features.items():
        assert set(feat) == ref_keys, f"batch feature keys {sorted(set(feat) ^ ref_keys)} differ"
        assert feat["n_prompts_total"] == N_WINDOWS and feat["n_tokens_in_prompt"] == CONTEXT
        assert feat["dataset"] == "tiny/corpus"  # the public dataset id, never a local path
        check_feature(setup, index, feat, render_tokens)


def _row_feature(row: dict[str, Any], acts: list[dict[str, Any]], window_max: np.ndarray) -> dict[str, Any]:
    """A bulk-import `Neuron` row and its `Activation` rows in the shape of a batch feature. The rows carry no rank
    (they are stored grouped by window; Neuronpedia orders by `maxValue`): the top group is sorted by value, and
    values equal to the 3 decimals written by the window's exact maximum."""
    feat = dict(row)
    examples = []
    for a in acts:
        values = a["values"]
        assert a["maxValue"] == pytest.approx(max(values), abs=1e-9)
        assert a["minValue"] == pytest.approx(min(values), abs=1e-9)
        assert values[a["maxValueTokenIndex"]] == pytest.approx(max(values), abs=1e-9)
        examples.append({"bin_min": a["binMin"], "bin_max": a["binMax"], "bin_contains": a["binContains"],
                         "tokens": a["tokens"], "values": values, "qualifying_token_index": a["qualifyingTokenIndex"],
                         "window_index": int(a["dataIndex"])})
    top = sorted((e for e in examples if e["bin_min"] == -1),
                 key=lambda e: (-e["values"][e["qualifying_token_index"]], -window_max[e["window_index"]]))
    feat["activations"] = top + [e for e in examples if e["bin_min"] != -1]
    return feat


def test_bulk_import_rows_equal_saedashboard(exported: tuple[Setup, dict[str, Any]]) -> None:
    """`neuronpedia/exports/{model}/{source}/features|activations/batch-*.jsonl.gz` (Neuronpedia's importer)."""
    setup, archive = exported
    by_index: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for a in archive["rows"]["activations"]:
        by_index[int(a["index"])].append(a)
    rows = {int(r["index"]): r for r in archive["rows"]["features"]}
    assert sorted(rows) == list(range(setup.sae.cfg.d_sae))
    w = setup.sae.W_dec.detach().double()
    w = w / w.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    cos = (w @ w.T).numpy()
    for index, row in rows.items():
        check_feature(setup, index, _row_feature(row, by_index[index], setup.acts[..., index].max(axis=1)),
                      render_tokens)
        want = np.argsort(-cos[index], kind="stable")[:10].tolist()
        assert_topk(row["topkCosSimIndices"], row["topkCosSimValues"], want, cos[index, want].tolist(), cos[index],
                    "topkCosSimIndices")
