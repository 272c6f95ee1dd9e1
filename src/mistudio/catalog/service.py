"""Catalog operations: register, import, download, delete, convert, configuration, statistics and
training links. Files live under MISTUDIO_HOME/saes/{id}/; rows in the `saes` table."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mistudio.catalog import schemas
from mistudio.catalog.archives import is_archive, unpack_archive
from mistudio.catalog.import_checks import (
    check_import_root,
    check_inside_roots,
    explain_unreadable,
    run_import_checks,
)
from mistudio.db.models import SAERecord, Training, new_id, utcnow
from mistudio.errors import (
    ConflictError,
    CorruptFileError,
    InvalidInputError,
    MiStudioError,
    NotFoundError,
    UnknownFormatError,
)
from mistudio.fsutil import dir_size, safe_join
from mistudio.saes.formats import (
    FORMAT_NAMES,
    DetectedSAE,
    find_saes,
    inspect_sae,
    read_detected,
    write_native,
    write_saelens,
)
from mistudio.saes.model import SAE, SAEConfig, layer_from_hook_name
from mistudio.saes.registry import apply_registry_data
from mistudio.studio import Studio

SOURCE_FOR_FORMAT = {"gemma_scope": "gemma_scope"}


def source_for(repo_id: str | None, fmt: str | None) -> str:
    """The catalog source of a hub SAE: `gemma_scope` for Gemma Scope repos, else `huggingface`."""
    if fmt == "gemma_scope" or (repo_id and "gemma-scope" in repo_id.lower()):
        return "gemma_scope"
    return "huggingface"


def apply_detected(record: SAERecord, detected: DetectedSAE) -> None:
    """Copy what format detection learned (dimensions, hook, model, architecture) onto a row."""
    cfg = detected.config
    record.format = detected.format
    record.d_in, record.d_sae = cfg.d_in, cfg.d_sae
    record.architecture, record.dtype = cfg.architecture, cfg.dtype
    record.hook_name = cfg.hook_name
    record.layer = cfg.hook_layer
    record.head_index = cfg.hook_head_index
    record.model_name = cfg.model_name
    record.metadata_json = {**(record.metadata_json or {}), "config": cfg.to_dict()}


def override_config(cfg: SAEConfig, model_name: str | None, hook_name: str | None) -> None:
    """Set the model and hook of an SAE config (the hook also sets the layer)."""
    if model_name:
        cfg.model_name = model_name
    if hook_name:
        cfg.hook_name = hook_name
        cfg.hook_layer = layer_from_hook_name(hook_name)


def get_record(session: Session, sae_id: str) -> SAERecord:
    """The SAE row; NotFoundError with the id if missing."""
    record = session.get(SAERecord, sae_id)
    if record is None:
        raise NotFoundError(f"SAE {sae_id} not found; `mistudio sae list` shows the catalog")
    return record


def sae_dir(studio: Studio, record: SAERecord) -> Path:
    """Absolute folder of a catalogued SAE's files (always inside the store)."""
    if not record.local_path:
        raise InvalidInputError(f"SAE {record.id} has no files yet (status {record.status})")
    return safe_join(studio.settings.home, record.local_path)


def find_duplicate(session: Session, fingerprint: str, config: dict[str, Any]) -> SAERecord | None:
    """A ready SAE whose tensors have `fingerprint` and whose config equals `config`, if any."""
    rows = session.scalars(select(SAERecord).where(
        SAERecord.status == "ready", SAERecord.metadata_json["content_sha256"].as_string() == fingerprint))
    return next((r for r in rows if (r.metadata_json or {}).get("config") == config), None)


def _stage(detected: DetectedSAE, staging: Path, move: bool) -> DetectedSAE:
    """Copy (or move) the detected SAE's files into `staging`; the same SAE, rooted there."""
    for name in detected.files:
        src = safe_join(detected.root, name)
        (staging / name).parent.mkdir(parents=True, exist_ok=True)  # e.g. Llama Scope's checkpoints/
        if move:
            shutil.move(str(src), staging / name)
        elif src.is_file():
            shutil.copy2(src, staging / name)
    files = [name for name in detected.files if (staging / name).is_file()]
    return dataclasses.replace(detected, root=staging, files=files)


def register_detected(studio: Studio, detected: DetectedSAE, *, name: str, source: str,
                      repo_id: str | None = None, path_in_repo: str | None = None, revision: str | None = None,
                      training_id: str | None = None, move: bool = False,
                      model_name: str | None = None, hook_name: str | None = None,
                      allowed_roots: Sequence[Path] | None = None) -> schemas.SAE:
    """Check a detected SAE and catalogue it: its files are staged in the store's temp folder, checked there
    (`import_checks.run_import_checks`), renamed into `saes/{id}/`, and the row is added last; a failure leaves
    no row and no file. `model_name` / `hook_name` supply what the files do not say (e.g. a Gemma Scope folder
    outside its repo). `allowed_roots` (REST imports) refuses files that link outside those folders.

    Identical tensors with an identical config already in the catalog are not stored twice: that SAE is returned
    with `duplicate_of` set to its id.

    Raises:
        InvalidInputError: the SAE fails a check (missing/mis-shaped tensor, NaN/Inf, unsupported hook).
        CorruptFileError: a file is truncated or unreadable.
        NotFoundError: `training_id` names no training record.
        ForbiddenError: a file links outside `allowed_roots`.
    """
    override_config(detected.config, model_name, hook_name)
    settings = studio.settings
    if training_id:
        with studio.sessions() as s:
            if s.get(Training, training_id) is None:
                raise NotFoundError(f"training {training_id} not found; `mistudio training list` shows them")
    if allowed_roots is not None:
        check_inside_roots([detected.root / n for n in detected.files], allowed_roots,
                           shown=lambda p: p.name)
    sae_id = new_id()
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"import-{sae_id}.", dir=settings.tmp_dir))
    target = settings.saes_dir / sae_id
    try:
        staged = _stage(detected, staging, move)
        report = run_import_checks(staged)
        config = staged.config.to_dict()
        with studio.sessions() as s, s.begin():
            existing = find_duplicate(s, report.fingerprint, config)
            if existing is not None:
                return schemas.SAE.from_record(existing).model_copy(update={"duplicate_of": existing.id})
            settings.saes_dir.mkdir(parents=True, exist_ok=True)
            staging.rename(target)
            try:
                record = SAERecord(id=sae_id, name=name, source=source, status="ready", repo_id=repo_id,
                                   path_in_repo=path_in_repo, revision=revision, training_id=training_id)
                apply_detected(record, staged)
                record.metadata_json = {**record.metadata_json, "content_sha256": report.fingerprint,
                                        "import_checks": report.to_dict()}
                record.local_path = settings.relative_to_home(target)
                record.size_bytes = dir_size(target)
                s.add(record)
                s.flush()
                created = schemas.SAE.from_record(record)
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
        return created
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _detect_for_import(path: Path, hints: dict[str, Any] | None) -> list[DetectedSAE]:
    """`find_saes` for an import: a reader failing on unexpected content is a refused import, not a crash.

    Raises:
        MiStudioError: the files cannot be read as an SAE.
    """
    try:
        return find_saes(path, hints)
    except CorruptFileError:
        explain_unreadable(path)  # the import's own words for a damaged file, named inside the import
        raise
    except MiStudioError:
        raise
    except Exception as exc:  # readers parsing damaged configs may raise KeyError, TypeError, ValueError ...
        raise CorruptFileError(f"the SAE files could not be read ({type(exc).__name__}: {exc}); "
                               "check its config file, or export the SAE again") from None


def register_sae_from_path(studio: Studio, path: str | Path, name: str | None = None, source: str = "upload",
                           training_id: str | None = None, hints: dict[str, Any] | None = None,
                           model_name: str | None = None, hook_name: str | None = None,
                           allowed_roots: Sequence[Path] | None = None, move: bool = False) -> schemas.SAE:
    """Detect the single SAE at `path` (a folder), check it and catalogue a copy of it (`register_detected`;
    `move` moves the files instead, for a temporary folder).

    Raises:
        UnknownFormatError: no SAE format recognised in `path`.
        InvalidInputError: several SAEs, or the SAE fails a check.
    """
    path = Path(path)
    found = _detect_for_import(path, hints)
    if not found:
        reason = (_unknown_reason(path, hints) if allowed_roots is None  # REST: no listing of server files
                  else f"formats tried: {', '.join(FORMAT_NAMES)} (docs/formats.md lists the files each needs)")
        raise UnknownFormatError(f"no SAE found in {path}: {reason}")
    if len(found) > 1:
        listed = ", ".join(str(d.root.relative_to(path)) for d in found[:20])
        raise InvalidInputError(f"{path} holds {len(found)} SAEs ({listed}); import one folder at a time")
    detected = found[0]
    return register_detected(studio, detected, name=name or path.name, source=source, training_id=training_id,
                             model_name=model_name, hook_name=hook_name, allowed_roots=allowed_roots, move=move)


def _unknown_reason(path: Path, hints: dict[str, Any] | None) -> str:
    try:
        inspect_sae(path, hints)
    except UnknownFormatError as exc:
        return exc.message
    except Exception:  # the detection above already said nothing matched
        pass
    return "no reader recognised the files"


def import_local(studio: Studio, path: str | Path, name: str | None = None,
                 original_name: str | None = None, source: str = "upload",
                 training_id: str | None = None, model_name: str | None = None,
                 hook_name: str | None = None, allowed_roots: Sequence[Path] | None = None) -> schemas.SAE:
    """Import a folder or a .zip/.tar archive of SAE files into the store (uploads land here too), after the
    checks of `import_checks`; an identical SAE already catalogued comes back with `duplicate_of` set.
    `source="trained"` with a `training_id` registers an SAE trained elsewhere with its training record.
    `allowed_roots` (REST imports from server paths): the resolved path must lie inside one of them, checked
    before anything reads it.

    Raises:
        ForbiddenError: `allowed_roots` is given and the path is outside it.
        NotFoundError: the path does not exist.
        InvalidInputError: not a folder or archive, too large, or the SAE fails a check.
    """
    if source not in ("upload", "trained"):
        raise InvalidInputError("a local import is either 'upload' or 'trained'")
    if allowed_roots is not None:
        path = check_import_root(path, allowed_roots)
    path = Path(path).expanduser()
    if not path.exists():
        raise NotFoundError(f"{path} does not exist; give the folder or archive that holds the SAE files")
    label = original_name or path.name
    if path.is_dir():
        if dir_size(path) > studio.settings.max_import_bytes:
            raise InvalidInputError(f"{path} is larger than MISTUDIO_MAX_IMPORT_BYTES "
                                    f"({studio.settings.max_import_bytes} bytes)")
        return register_sae_from_path(studio, path, name=name or label, source=source, training_id=training_id,
                                      model_name=model_name, hook_name=hook_name, allowed_roots=allowed_roots)
    if not is_archive(path):
        raise InvalidInputError(f"{label} is neither a folder nor a .zip/.tar archive of SAE files")
    studio.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=studio.settings.tmp_dir) as tmp:
        unpack_archive(path, Path(tmp), studio.settings.max_import_bytes)
        root = Path(tmp)
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
        if len(entries) == 1 and entries[0].is_dir():
            root = entries[0]
        stem = label
        for suffix in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip", ".tar"):
            stem = stem.removesuffix(suffix)
        return register_sae_from_path(studio, root, name=name or stem, source=source, training_id=training_id,
                                      model_name=model_name, hook_name=hook_name, move=True)


def start_hf_download(studio: Studio, repo_id: str, path_in_repo: str | None = None, *,
                      layer: int | None = None, width: str | int | None = None, l0: int | None = None,
                      revision: str | None = None, token: str | None = None,
                      name: str | None = None) -> schemas.DownloadStarted:
    """Create a `downloading` catalog row and a `sae_download` job; return their ids.

    When a SAELens release lists the SAE at `path_in_repo`, the registry's data (config overrides, norm scaling
    factor, Neuronpedia id, L0) is recorded on the catalogued config as for `start_release_download`.

    Raises:
        InvalidInputError: `repo_id` is not `owner/name`.
        ConflictError: the SAE is already catalogued (ready or downloading).
    """
    if not repo_id or repo_id.count("/") != 1:
        raise InvalidInputError(f"repo id {repo_id!r} should look like 'owner/name'")
    if path_in_repo is None and width is not None and l0 is not None:
        from mistudio.saes.gemma_scope_paths import gemma_scope_path

        path_in_repo = gemma_scope_path(layer, width, l0)
    path_in_repo = (path_in_repo or "").strip("/")
    return _start_download(studio, repo_id, path_in_repo, revision=revision, token=token, name=name,
                           registry_data=registry_data_for(repo_id, path_in_repo))


def start_release_download(studio: Studio, release: str, sae_id: str, *, revision: str | None = None,
                           token: str | None = None, name: str | None = None) -> schemas.DownloadStarted:
    """Download SAE `sae_id` of SAELens release `release`: its repo and path come from the registry, and the
    registry's data is recorded on the catalogued config (`cfg.extra["registry"]`, config overrides applied).

    Raises:
        NotFoundError: no such release, or no such SAE in it.
        ConflictError: the SAE is already catalogued (ready or downloading).
    """
    from mistudio.hub.releases import resolve_release_sae

    found, sae, data = resolve_release_sae(release, sae_id)
    return _start_download(studio, found.repo_id, sae.path.strip("/"), revision=revision, token=token,
                           name=name or f"{found.name}/{sae.id}", registry_data=data)


def registry_data_for(repo_id: str, path_in_repo: str) -> dict[str, Any] | None:
    """The registry data of the release SAE at `path_in_repo` of `repo_id`, if a release lists it."""
    from mistudio.saes.registry import get_registry

    if not path_in_repo:
        return None
    try:
        registry = get_registry()
    except NotFoundError:
        return None  # no registry available: the download works, only without the registry's data
    found = registry.lookup(repo_id, path_in_repo)
    return registry.registry_data(*found) if found is not None else None


def _start_download(studio: Studio, repo_id: str, path_in_repo: str, *, revision: str | None,
                    token: str | None, name: str | None,
                    registry_data: dict[str, Any] | None) -> schemas.DownloadStarted:
    with studio.sessions() as s, s.begin():
        duplicate = s.scalar(select(SAERecord).where(
            SAERecord.repo_id == repo_id, SAERecord.path_in_repo == path_in_repo,
            SAERecord.status.in_(("ready", "downloading"))))
        if duplicate is not None and (revision is None or duplicate.revision in (None, revision)):
            raise ConflictError(f"{repo_id}/{path_in_repo} is already in the catalog as SAE {duplicate.id} "
                                f"({duplicate.status}); delete it first to download again")
        record = SAERecord(name=name or (f"{repo_id}/{path_in_repo}" if path_in_repo else repo_id),
                           source=source_for(repo_id, None), status="downloading", repo_id=repo_id,
                           path_in_repo=path_in_repo, revision=revision)
        s.add(record)
        s.flush()
        sae_id = record.id
    params: dict[str, Any] = {"sae_id": sae_id, "repo_id": repo_id, "path_in_repo": path_in_repo,
                              "revision": revision}
    if registry_data:
        params["registry"] = registry_data
    job_id = studio.runner.create("sae_download", params, sae_id=sae_id, secrets={"token": token})
    with studio.sessions() as s, s.begin():
        get_record(s, sae_id).job_id = job_id
    return schemas.DownloadStarted(job_id=job_id, sae_id=sae_id)


def delete_sae(studio: Studio, sae_id: str) -> None:
    """Delete an SAE: its files inside the store (weights, feature stores, export archives, work folders of its
    jobs) and its rows (extractions, summaries and exports cascade; its jobs stay as history, pending ones are
    cancelled).

    Raises:
        NotFoundError: no SAE `sae_id`.
        ConflictError: one of its jobs is running; cancel it first.
    """
    from mistudio.db.models import ExportRecord, Job
    from mistudio.hub.download import partial_dir

    settings = studio.settings
    studio.runner.reconcile()  # a job whose process died is not running
    with studio.sessions() as s:
        get_record(s, sae_id)
        jobs = list(s.execute(select(Job.id, Job.status).where(Job.sae_id == sae_id)))
        archives = [settings.absolute(p) for p in s.scalars(
            select(ExportRecord.output_path).where(ExportRecord.sae_id == sae_id)) if p]
    if running := [job_id for job_id, status in jobs if status == "running"]:
        raise ConflictError(f"SAE {sae_id} has a running job ({', '.join(running)}); cancel it first "
                            "(`mistudio jobs cancel`), then delete the SAE")
    for job_id, status in jobs:
        if status in ("pending", "paused", "interrupted"):
            studio.runner.cancel(job_id)
    with studio.sessions() as s, s.begin():
        record = get_record(s, sae_id)
        folder = safe_join(settings.home, record.local_path) if record.local_path else None
        features = safe_join(settings.features_dir, sae_id)
        s.delete(record)
    download = settings.tmp_dir / f"download-{sae_id}"
    folders = [folder, features, download, partial_dir(download), *settings.tmp_dir.glob(f"import-{sae_id}.*"),
               *(settings.tmp_dir / f"export-{job_id}" for job_id, _ in jobs)]
    for path in folders:
        if path is not None and path.exists() and path != settings.home.resolve():
            shutil.rmtree(path, ignore_errors=True)
    for archive in [*archives, *(settings.exports_dir / f"{job_id}.zip" for job_id, _ in jobs)]:
        if archive.is_relative_to(settings.home):
            archive.unlink(missing_ok=True)


def _registry_of(record: SAERecord) -> dict[str, Any] | None:
    """The SAELens registry data recorded on a catalogued SAE's config, if it came from a release."""
    extra = ((record.metadata_json or {}).get("config") or {}).get("extra") or {}
    data = extra.get("registry")
    return data if isinstance(data, dict) else None


def _detect_catalogued(folder: Path, hints: dict[str, Any] | None, registry: dict[str, Any] | None) -> DetectedSAE:
    """Detect a catalogued SAE's files and re-apply the registry data it was catalogued with."""
    detected = inspect_sae(folder, hints)
    if registry:
        apply_registry_data(detected.config, registry)
    return detected


def load_sae_for(studio: Studio, sae_id: str, device: str = "cpu", dtype: Any = None) -> SAE:
    """Load a catalogued SAE's weights."""
    with studio.sessions() as s:
        record = get_record(s, sae_id)
        if record.status != "ready":
            raise ConflictError(f"SAE {sae_id} is {record.status}, not ready")
        folder = sae_dir(studio, record)
        hints = {"repo_id": record.repo_id, "path_in_repo": record.path_in_repo} if record.repo_id else None
        known = (record.model_name, record.hook_name)
        registry = _registry_of(record)
    sae = read_detected(_detect_catalogued(folder, hints, registry), device=device, dtype=dtype)
    # the catalog row keeps what the files alone may not say (repo name, parent config, user overrides)
    override_config(sae.cfg, None if sae.cfg.model_name else known[0], None if sae.cfg.hook_name else known[1])
    return sae


def sae_config(studio: Studio, sae_id: str) -> schemas.SAEConfigView:
    """The SAE's configuration as read from its files (no weights loaded), with its registry data applied."""
    with studio.sessions() as s:
        record = get_record(s, sae_id)
        folder = sae_dir(studio, record)
        hints = {"repo_id": record.repo_id, "path_in_repo": record.path_in_repo} if record.repo_id else None
        registry = _registry_of(record)
    detected = _detect_catalogued(folder, hints, registry)
    return schemas.SAEConfigView(format=detected.format, config=detected.config.to_dict(),
                                 source_config=detected.config_preview, files=detected.files)


def sae_statistics(studio: Studio, sae_id: str) -> schemas.SAEStatistics:
    """Size, decoder-norm summary, dead decoder rows, and L0 / explained variance when the source gives them."""
    from mistudio.saes.stats import weight_statistics

    sae = load_sae_for(studio, sae_id)
    stats = weight_statistics(sae)
    with studio.sessions() as s:
        record = get_record(s, sae_id)
        stats["size_bytes"] = record.size_bytes
        extra = (record.metadata_json or {}).get("config", {}).get("extra", {}) or {}
    for key in ("l0", "average_l0", "variance_explained", "explained_variance"):
        if key in extra:
            stats[key] = extra[key]
    registry = extra.get("registry")
    registry = registry if isinstance(registry, dict) else {}
    for key in ("l0", "variance_explained"):  # what the SAELens registry says, when the files do not
        if key not in stats and registry.get(key) is not None:
            stats[key] = registry[key]
    return schemas.SAEStatistics.model_validate(stats)


def convert_catalogued(studio: Studio, sae_id: str, to: str,
                       out_dir: str | Path | None = None) -> schemas.ConvertResult:
    """Write a catalogued SAE as SAELens or miStudio native into `out_dir` (default: under the store)."""
    if to not in ("saelens", "mistudio"):
        raise InvalidInputError("convert target must be 'saelens' or 'mistudio'")
    sae = load_sae_for(studio, sae_id)
    target = Path(out_dir) if out_dir else studio.settings.home / "converted" / sae_id / to
    if out_dir is None and target.exists():
        shutil.rmtree(target)
    if to == "saelens":
        written = write_saelens(sae, target)
    else:
        written = write_native(sae, target)
    return schemas.ConvertResult.model_validate({"path": str(written), "format": to})


# -- training records -----------------------------------------------------------------------------------
def create_training(session: Session, **fields: Any) -> schemas.Training:
    """Record a training run (model, hook, dataset, hyper-parameters, metrics)."""
    if not fields.get("name"):
        raise InvalidInputError("a training record needs a name")
    training = Training(**fields)
    session.add(training)
    session.flush()
    return schemas.Training.from_record(training)


def _sae_ids_of(session: Session, training_ids: Sequence[str]) -> dict[str, str]:
    """The catalogued SAE linked to each training (the newest when several are)."""
    rows = session.execute(select(SAERecord.training_id, SAERecord.id).where(SAERecord.training_id.in_(training_ids))
                           .order_by(SAERecord.created_at))
    return {str(training_id): sae_id for training_id, sae_id in rows}


def list_trainings(session: Session) -> list[schemas.Training]:
    """All training records, newest first."""
    trainings = list(session.scalars(select(Training).order_by(Training.created_at.desc())))
    linked = _sae_ids_of(session, [t.id for t in trainings])
    return [schemas.Training.from_record(t, linked.get(t.id)) for t in trainings]


def get_training(session: Session, training_id: str) -> schemas.Training:
    """One training record.

    Raises:
        NotFoundError: no training record `training_id`.
    """
    training = session.get(Training, training_id)
    if training is None:
        raise NotFoundError(f"training {training_id} not found; `mistudio training list` shows them")
    return schemas.Training.from_record(training, _sae_ids_of(session, [training_id]).get(training_id))


def link_training(session: Session, sae_id: str, training_id: str) -> schemas.SAE:
    """Link an SAE to its training record."""
    record = get_record(session, sae_id)
    if session.get(Training, training_id) is None:
        raise NotFoundError(f"training {training_id} not found")
    record.training_id = training_id
    record.updated_at = utcnow()
    session.flush()
    return schemas.SAE.from_record(record)
