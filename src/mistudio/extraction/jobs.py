"""The `extraction` job: load the SAE and model, tokenise the dataset, run the engine, write summary rows."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from mistudio.catalog.service import load_sae_for
from mistudio.datasets.sources import load_texts
from mistudio.datasets.windows import n_windows_for, tokenize_windows
from mistudio.db.models import Extraction, utcnow
from mistudio.errors import JobCancelled, JobPaused
from mistudio.extraction.engine import ExtractionSettings, ProgressFn, run_extraction
from mistudio.extraction.sae_inputs import input_transforms
from mistudio.extraction.summaries import write_summaries
from mistudio.jobs.context import JobContext
from mistudio.jobs.registry import register_job_type
from mistudio.lm.model_shape import model_shape
from mistudio.studio import Studio

STAGES = ["load", "tokenize", "extract", "neuronpedia", "summaries"]
NEURONPEDIA_STAGE = "neuronpedia"


def _set_status(ctx: JobContext[Studio], extraction_id: str, **fields: Any) -> None:
    with ctx.session() as s, s.begin():
        row = s.get(Extraction, extraction_id)
        for key, value in fields.items():
            setattr(row, key, value)


def _progress_reporter(ctx: JobContext[Studio], neuronpedia: bool) -> ProgressFn:
    """Progress of the engine's passes: the first in [0.05, 0.95] (in [0.05, 0.5] when the Neuronpedia pass
    follows, which then fills [0.5, 0.95] as the job's `neuronpedia` stage)."""
    in_second = {"started": False}

    def report(p: dict[str, Any]) -> None:
        second = str(p.get("stage") or "").startswith("neuronpedia pass")
        if second and not in_second["started"]:
            in_second["started"] = True
            ctx.stage(NEURONPEDIA_STAGE)
        rate, eta = p.get("tokens_per_s") or 0.0, p.get("eta_s")
        eta_text = f", ETA {eta:.0f}s" if eta is not None else ""
        base, span = (0.5, 0.45) if second else (0.05, 0.45 if neuronpedia else 0.9)
        ctx.progress(base + span * p["fraction"], f"{p['windows_done']}/{p['n_windows']} windows, "
                     f"{rate:,.0f} tok/s{eta_text}", stage_fraction=p["fraction"])

    return report


@register_job_type("extraction")
def extraction_job(ctx: JobContext[Studio], params: dict[str, Any]) -> dict[str, Any]:
    """Job handler: params {sae_id, extraction_id, model, dataset, n_tokens|n_prompts, context_size, top_k, …}."""
    from mistudio.lm.loading import load_model

    studio = ctx.studio
    settings = studio.settings
    sae_id, extraction_id = params["sae_id"], params["extraction_id"]
    neuronpedia = bool(params.get("neuronpedia", True))
    ctx.set_stages([st for st in STAGES if neuronpedia or st != NEURONPEDIA_STAGE])
    with ctx.session() as s:  # a completed extraction run again only gets its missing Neuronpedia parts
        upgrading = getattr(s.get(Extraction, extraction_id), "status", None) == "completed"
    try:
        ctx.stage("load")
        if not upgrading:
            _set_status(ctx, extraction_id, status="running")
        loaded = load_model(params["model"], device=params.get("device"), dtype=params.get("dtype"))
        sae = load_sae_for(studio, sae_id, device=str(loaded.device))
        inputs = input_transforms(loaded, sae, sae_id=sae_id)
        hook, transform, target_transform = inputs.hook, inputs.transform, inputs.target_transform
        ctx.stage("tokenize")
        context_size = int(params.get("context_size") or sae.cfg.context_size or 128)
        n_windows = n_windows_for(params.get("n_tokens"), params.get("n_prompts"), context_size)
        source = load_texts(params["dataset"], text_field=params.get("text_field", "text"),
                            split=params.get("split", "train"))
        windows = tokenize_windows(source, loaded.tokenizer, context_size=context_size, n_windows=n_windows,
                                   prepend_bos=sae.cfg.prepend_bos, shuffle=bool(params.get("shuffle", True)),
                                   seed=int(params.get("seed", 0)),
                                   separator=sae.cfg.extra.get("sequence_separator_token", "bos"),
                                   concat_sequences=not sae.cfg.extra.get("disable_concat_sequences", False))
        ctx.stage("extract")
        store_dir = settings.features_dir / sae_id / extraction_id
        _set_status(ctx, extraction_id, store_path=settings.relative_to_home(store_dir))
        engine_settings = ExtractionSettings(**{
            f.name: params[f.name] for f in fields(ExtractionSettings) if params.get(f.name) is not None})
        store = run_extraction(loaded, sae, windows, store_dir, settings=engine_settings, transform=transform,
                               target_transform=target_transform, progress=_progress_reporter(ctx, neuronpedia),
                               check=ctx.check_cancelled,
                               manifest={"model": loaded.name, "sae_id": sae_id, "extraction_id": extraction_id,
                                         "hook_name": hook, "sae_config": sae.cfg.to_dict()})
        store.update_manifest(model_shape=model_shape(loaded.model.config).to_dict())  # read by exports
        ctx.stage("summaries")
        with ctx.session() as s, s.begin():
            n = write_summaries(s, sae_id, extraction_id, store)
        arrays = store.summary_arrays()
        reconstruction = store.manifest.get("reconstruction") or {}
        stats = {"n_dead": int(arrays["dead"].sum()), "n_alive": int((~arrays["dead"]).sum()),
                 "mean_l0": float(arrays["frequency"].sum()), **store.manifest.get("timings", {}),
                 **{key: reconstruction[key] for key in ("mse", "explained_variance") if key in reconstruction}}
        _set_status(ctx, extraction_id, status="completed", n_tokens=int(store.manifest["n_tokens"]),
                    n_features=n, statistics=stats, finished_at=utcnow())
        return {"extraction_id": extraction_id, "n_features": n, "n_tokens": int(store.manifest["n_tokens"]),
                **stats}
    except BaseException as exc:
        status = "paused" if isinstance(exc, JobPaused) else (
            "cancelled" if isinstance(exc, JobCancelled) else "failed")
        if not upgrading:  # an upgrade that stopped leaves the completed extraction as it was
            _set_status(ctx, extraction_id, status=status)
        raise
