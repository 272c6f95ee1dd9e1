"""Catalog operations: register, import, download, delete, convert, configuration, statistics and
training links. Files live under MISTUDIO_HOME/saes/{id}/; rows in the `saes` table."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mistudio.catalog import schemas
from mistudio.catalog.archives import is_archive, unpack_archive
from mistudio.db.models import SAERecord, Training, utcnow
from mistudio.errors import ConflictError, InvalidInputError, NotFoundError, UnknownFormatError
from mistudio.fsutil import atomic_dir, dir_size, safe_join
from mistudio.saes.formats import DetectedSAE, find_saes, inspect_sae, read_sae, write_native, write_saelens
from mistudio.saes.model import SAE, SAEConfig, layer_from_hook_name
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


def _copy_detected(detected: DetectedSAE, dest: Path) -> None:
    for name in detected.files:
        src = safe_join(detected.root, name)
        if src.is_file():
            shutil.copy2(src, dest / name)


def register_detected(studio: Studio, detected: DetectedSAE, *, name: str, source: str,
                      repo_id: str | None = None, path_in_repo: str | None = None, revision: str | None = None,
                      training_id: str | None = None, move: bool = False,
                      model_name: str | None = None, hook_name: str | None = None) -> schemas.SAE:
    """Copy (or move) a detected SAE into the store and catalogue it; nothing is left behind on failure.
    `model_name` / `hook_name` supply what the files do not say (e.g. a Gemma Scope folder outside its repo)."""
    override_config(detected.config, model_name, hook_name)
    with studio.sessions() as s, s.begin():
        record = SAERecord(name=name, source=source, status="ready", repo_id=repo_id, path_in_repo=path_in_repo,
                           revision=revision, training_id=training_id)
        if training_id and s.get(Training, training_id) is None:
            raise NotFoundError(f"training {training_id} not found")
        apply_detected(record, detected)
        s.add(record)
        s.flush()
        target = studio.settings.saes_dir / record.id
        with atomic_dir(target) as tmp:
            if move:
                for name_ in detected.files:
                    shutil.move(str(safe_join(detected.root, name_)), tmp / name_)
            else:
                _copy_detected(detected, tmp)
        try:
            record.local_path = studio.settings.relative_to_home(target)
            record.size_bytes = dir_size(target)
            s.flush()
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return schemas.SAE.from_record(record)


def register_sae_from_path(studio: Studio, path: str | Path, name: str | None = None, source: str = "upload",
                           training_id: str | None = None, hints: dict[str, Any] | None = None,
                           model_name: str | None = None, hook_name: str | None = None) -> schemas.SAE:
    """Detect the single SAE at `path` (a folder) and catalogue a copy of it."""
    path = Path(path)
    found = find_saes(path, hints)
    if not found:
        raise UnknownFormatError(f"no SAE found in {path}: " + _unknown_reason(path, hints))
    if len(found) > 1:
        listed = ", ".join(str(d.root.relative_to(path)) for d in found[:20])
        raise InvalidInputError(f"{path} holds {len(found)} SAEs ({listed}); import one folder at a time")
    detected = found[0]
    return register_detected(studio, detected, name=name or path.name, source=source, training_id=training_id,
                             model_name=model_name, hook_name=hook_name)


def _unknown_reason(path: Path, hints: dict[str, Any] | None) -> str:
    try:
        inspect_sae(path, hints)
    except UnknownFormatError as exc:
        return exc.message
    return "no reader recognised the files"


def import_local(studio: Studio, path: str | Path, name: str | None = None,
                 original_name: str | None = None, source: str = "upload",
                 training_id: str | None = None, model_name: str | None = None,
                 hook_name: str | None = None) -> schemas.SAE:
    """Import a folder or a .zip/.tar archive of SAE files into the store (uploads land here too).
    `source="trained"` with a `training_id` registers an SAE trained elsewhere with its training record."""
    if source not in ("upload", "trained"):
        raise InvalidInputError("a local import is either 'upload' or 'trained'")
    path = Path(path).expanduser()
    if not path.exists():
        raise NotFoundError(f"{path} does not exist; give the folder or archive that holds the SAE files")
    label = original_name or path.name
    if path.is_dir():
        if dir_size(path) > studio.settings.max_import_bytes:
            raise InvalidInputError(f"{path} is larger than MISTUDIO_MAX_IMPORT_BYTES "
                                    f"({studio.settings.max_import_bytes} bytes)")
        return register_sae_from_path(studio, path, name=name or label, source=source, training_id=training_id,
                                      model_name=model_name, hook_name=hook_name)
    if not is_archive(path):
        raise InvalidInputError(f"{label} is neither a folder nor a .zip/.tar archive of SAE files")
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
                                      model_name=model_name, hook_name=hook_name)


def start_hf_download(studio: Studio, repo_id: str, path_in_repo: str | None = None, *,
                      layer: int | None = None, width: str | int | None = None, l0: int | None = None,
                      revision: str | None = None, token: str | None = None,
                      name: str | None = None) -> schemas.DownloadStarted:
    """Create a `downloading` catalog row and a `sae_download` job; return their ids."""
    if not repo_id or repo_id.count("/") != 1:
        raise InvalidInputError(f"repo id {repo_id!r} should look like 'owner/name'")
    if path_in_repo is None and width is not None and l0 is not None:
        from mistudio.saes.gemma_scope_paths import gemma_scope_path

        path_in_repo = gemma_scope_path(layer, width, l0)
    path_in_repo = (path_in_repo or "").strip("/")
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
    if token:
        params["token"] = token
    job_id = studio.runner.create("sae_download", params, sae_id=sae_id)
    with studio.sessions() as s, s.begin():
        get_record(s, sae_id).job_id = job_id
    return schemas.DownloadStarted(job_id=job_id, sae_id=sae_id)


def delete_sae(studio: Studio, sae_id: str) -> None:
    """Delete an SAE's files (only inside the store) and its rows (extractions, summaries cascade)."""
    with studio.sessions() as s, s.begin():
        record = get_record(s, sae_id)
        folder = safe_join(studio.settings.home, record.local_path) if record.local_path else None
        features = safe_join(studio.settings.features_dir, sae_id)
        s.delete(record)
    from mistudio.hub.download import partial_dir

    download = studio.settings.tmp_dir / f"download-{sae_id}"
    for path in (folder, features, download, partial_dir(download)):
        if path is not None and path.exists() and path != studio.settings.home.resolve():
            shutil.rmtree(path, ignore_errors=True)


def load_sae_for(studio: Studio, sae_id: str, device: str = "cpu", dtype: Any = None) -> SAE:
    """Load a catalogued SAE's weights."""
    with studio.sessions() as s:
        record = get_record(s, sae_id)
        if record.status != "ready":
            raise ConflictError(f"SAE {sae_id} is {record.status}, not ready")
        folder = sae_dir(studio, record)
        hints = {"repo_id": record.repo_id, "path_in_repo": record.path_in_repo} if record.repo_id else None
        known = (record.model_name, record.hook_name)
    sae = read_sae(folder, hints=hints, device=device, dtype=dtype)
    # the catalog row keeps what the files alone may not say (repo name, parent config, user overrides)
    override_config(sae.cfg, None if sae.cfg.model_name else known[0], None if sae.cfg.hook_name else known[1])
    return sae


def sae_config(studio: Studio, sae_id: str) -> schemas.SAEConfigView:
    """The SAE's configuration as read from its files (no weights loaded)."""
    with studio.sessions() as s:
        record = get_record(s, sae_id)
        folder = sae_dir(studio, record)
        hints = {"repo_id": record.repo_id, "path_in_repo": record.path_in_repo} if record.repo_id else None
    detected = inspect_sae(folder, hints)
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


def list_trainings(session: Session) -> list[schemas.Training]:
    """All training records, newest first."""
    trainings = session.scalars(select(Training).order_by(Training.created_at.desc()))
    return [schemas.Training.from_record(t) for t in trainings]


def link_training(session: Session, sae_id: str, training_id: str) -> schemas.SAE:
    """Link an SAE to its training record."""
    record = get_record(session, sae_id)
    if session.get(Training, training_id) is None:
        raise NotFoundError(f"training {training_id} not found")
    record.training_id = training_id
    record.updated_at = utcnow()
    session.flush()
    return schemas.SAE.from_record(record)
