"""The `extraction` job: load the SAE and model, tokenise the dataset, run the engine, write summary rows."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from mistudio.catalog.service import load_sae_for
from mistudio.datasets.sources import load_texts
from mistudio.datasets.windows import n_windows_for, tokenize_windows
from mistudio.db.models import Extraction, utcnow
from mistudio.errors import InvalidInputError, JobCancelled, JobPaused
from mistudio.extraction.engine import ExtractionSettings, ProgressFn, run_extraction, sae_hooks
from mistudio.extraction.summaries import write_summaries
from mistudio.jobs.context import JobContext
from mistudio.jobs.registry import register_job_type
from mistudio.studio import Studio

STAGES = ["load", "tokenize", "extract", "summaries"]


def _set_status(ctx: JobContext[Studio], extraction_id: str, **fields: Any) -> None:
    with ctx.session() as s, s.begin():
        row = s.get(Extraction, extraction_id)
        for key, value in fields.items():
            setattr(row, key, value)


def _progress_reporter(ctx: JobContext[Studio]) -> ProgressFn:
    def report(p: dict[str, Any]) -> None:
        rate, eta = p.get("tokens_per_s") or 0.0, p.get("eta_s")
        eta_text = f", ETA {eta:.0f}s" if eta is not None else ""
        ctx.progress(0.05 + 0.9 * p["fraction"], f"{p['windows_done']}/{p['n_windows']} windows, "
                     f"{rate:,.0f} tok/s{eta_text}", stage_fraction=p["fraction"])

    return report


@register_job_type("extraction")
def extraction_job(ctx: JobContext[Studio], params: dict[str, Any]) -> dict[str, Any]:
    """Job handler: params {sae_id, extraction_id, model, dataset, n_tokens|n_prompts, context_size, top_k, …}."""
    from mistudio.lm.hooks import resolve_hook
    from mistudio.lm.loading import load_model
    from mistudio.lm.processing import activation_transform_for

    studio = ctx.studio
    settings = studio.settings
    sae_id, extraction_id = params["sae_id"], params["extraction_id"]
    ctx.set_stages(STAGES)
    try:
        ctx.stage("load")
        _set_status(ctx, extraction_id, status="running")
        loaded = load_model(params["model"], device=params.get("device"), dtype=params.get("dtype"))
        sae = load_sae_for(studio, sae_id, device=str(loaded.device))
        try:
            hook, hook_out = sae_hooks(sae)
        except InvalidInputError as exc:
            raise InvalidInputError(f"SAE {sae_id}: {exc.message}") from exc
        resolve_hook(loaded, hook)
        transform = activation_transform_for(sae.cfg, hook, loaded, sae.cfg.hook_head_index)
        target_transform = None
        if hook_out is not None:
            resolve_hook(loaded, hook_out)
            target_transform = activation_transform_for(sae.cfg, hook_out, loaded)
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
                               target_transform=target_transform, progress=_progress_reporter(ctx),
                               check=ctx.check_cancelled,
                               manifest={"model": loaded.name, "sae_id": sae_id, "extraction_id": extraction_id,
                                         "hook_name": hook, "sae_config": sae.cfg.to_dict()})
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
        _set_status(ctx, extraction_id, status=status)
        raise
