"""Publish a catalogued SAE to a HuggingFace Hub repo in the layout `SAE.from_pretrained(repo_id, folder)` reads.

The repo gets `{folder}/cfg.json`, `{folder}/sae_weights.safetensors`, `{folder}/sparsity.safetensors` (log10
feature frequency from the SAE's latest extraction, as the SAELens export writes it) and `{folder}/README.md`
(this SAE's facts), plus at the root a model card `README.md` and `pretrained_saes.yaml` (the SAELens registry
entry of the repo, merged with what earlier publishes put there). Everything goes through `huggingface_hub`:
`create_repo(exist_ok=True)`, `create_branch` for a revision other than `main`, `get_paths_info` to compare the
local files' sha256 / git blob ids with the remote ones, then one `create_commit` of the files that changed.
Re-running with nothing changed commits nothing; a failed upload run again does not send the large files that
already reached the Hub (its LFS batch or Xet answers say they are there).

SAELens resolves a repo id that is not one of its registry's releases to `(repo_id, folder)` and loads it with
its `sae_lens` loader (`SAE.from_pretrained("OWNER/NAME", "FOLDER")`). That loader reads the default branch only,
so a publish to another revision is loaded with `snapshot_download(..., revision=...)` then `SAE.load_from_disk`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from mistudio.errors import HubAuthError, HubError, HubUnreachableError, InvalidInputError, NotFoundError
from mistudio.export.public_names import is_local_reference
from mistudio.hub.client import HubConnection, connect, hub_errors
from mistudio.jobs.context import JobContext
from mistudio.jobs.registry import register_job_type
from mistudio.studio import Studio

if TYPE_CHECKING:  # torch is loaded only when something is published
    import numpy as np

    from mistudio.saes.model import SAE

STAGES = ["Writing SAELens folder", "Comparing with the Hub", "Uploading files", "Committing"]
REGISTRY_FILE = "pretrained_saes.yaml"
CARD_FILE = "README.md"
NEURONPEDIA_URL = "https://www.neuronpedia.org"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_FOLDER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._\-]*(/[A-Za-z0-9_][A-Za-z0-9._\-]*)*$")
_BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")


class PublishRequest(BaseModel):
    """Where and how to publish an SAE."""

    model_config = ConfigDict(extra="forbid")

    repo_id: str = Field(description="The Hub repo, OWNER/NAME (created when missing)")
    folder: str | None = Field(None, description="Sub-folder of the repo for this SAE (SAELens's sae_id); "
                               "default: the SAE's hook name")
    private: bool = Field(False, description="Create the repo private (ignored when it already exists)")
    revision: str | None = Field(None, description="Branch to commit to (created from main when missing); "
                                 "default main")
    token: str | None = Field(None, description="A Hub token with write access; default HF_TOKEN or the token "
                              "saved by `hf auth login`")
    model_id: str | None = Field(None, description="The model's Hub id, when the SAE names a local model folder")
    dataset_id: str | None = Field(None, description="The training dataset's Hub id, when the SAE names a local "
                                   "dataset")
    neuronpedia_id: str | None = Field(None, description="The SAE's Neuronpedia id (MODEL/SOURCE), when it has "
                                       "one and its config does not say it")
    extraction_id: str | None = Field(None, description="Extraction whose frequencies fill sparsity.safetensors "
                                      "and the card's measured L0; default the latest completed one")


class PublishResult(BaseModel):
    """What a publish did: the commit, which files it uploaded and which were already there."""

    repo_id: str
    folder: str
    revision: str
    repo_url: str
    commit_oid: str | None = Field(description="The commit the revision points to after the publish")
    commit_url: str | None
    committed: bool = Field(description="Whether a new commit was made (false when nothing changed)")
    uploaded: list[str] = Field(description="Paths in the repo whose content was committed")
    unchanged: list[str] = Field(description="Paths already on the Hub with the same content")
    load_snippet: str = Field(description="Python that loads the published SAE with SAELens")
    neuronpedia_url: str | None
    notes: list[str] = Field(default_factory=list)


class PublishStarted(BaseModel):
    """A queued publish job."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    sae_id: str


@dataclass
class PublishCallbacks:
    """How a publish reports: stage starts and progress in [0, 1] of the whole publish (no-ops by default)."""

    stage: Callable[[str], None] = lambda name: None
    progress: Callable[[float, str | None], None] = lambda fraction, message: None


@dataclass
class PublishFacts:
    """What the model card says about one SAE beyond its config: measured figures and their provenance."""

    l0: float | None = None
    explained_variance: float | None = None
    dead_fraction: float | None = None
    n_dead: int | None = None
    measured_on: str | None = None  # "N tokens of DATASET" for figures measured by an extraction
    notes: list[str] = field(default_factory=list)


# ---- names ---------------------------------------------------------------------------------------------------
def check_repo_id(repo_id: str) -> str:
    """`repo_id` stripped, checked to be `OWNER/NAME`.

    Raises:
        InvalidInputError: it is not `OWNER/NAME` with letters, digits, `-`, `_`, `.`.
    """
    repo_id = (repo_id or "").strip()
    if not _REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith((".git", ".")):
        raise InvalidInputError(f"the repo {repo_id!r} should be OWNER/NAME (your user or organisation name, a "
                                "slash, then the repo name; letters, digits, '-', '_' and '.'), e.g. alice/gpt2-saes")
    return repo_id


def default_folder(sae: SAE) -> str:
    """The repo sub-folder of an SAE when none is given: its hook name (as SAELens's own releases name them)."""
    return sae.cfg.hook_name or f"layer_{sae.cfg.hook_layer}"


def _check_folder(folder: str) -> str:
    folder = folder.strip().strip("/")
    if not _FOLDER.match(folder) or ".." in folder.split("/") or folder.startswith(".git"):
        raise InvalidInputError(f"the folder {folder!r} is not a valid path inside a repo; use letters, digits, "
                                "'.', '_', '-' and '/' (e.g. blocks.6.hook_resid_post)")
    return folder


def _check_revision(revision: str | None) -> str:
    revision = (revision or "main").strip()
    if not _BRANCH.match(revision) or ".." in revision or revision.endswith(("/", ".lock")):
        raise InvalidInputError(f"the revision {revision!r} is not a valid branch name; use e.g. main or dev")
    return revision


def release_name(repo_id: str) -> str:
    """The SAELens release name of a published repo: its name, lower case."""
    return re.sub(r"[^a-z0-9.-]+", "-", repo_id.split("/")[1].lower()).strip("-") or "saes"


def source_set_url(neuronpedia_id: str | None) -> str | None:
    """The Neuronpedia page of the source set an SAE's id `{model}/{layer}-{set}` belongs to (SAELens's
    `links.dashboards`)."""
    if not neuronpedia_id or "/" not in neuronpedia_id:
        return None
    model, source = neuronpedia_id.split("/", 1)
    return f"{NEURONPEDIA_URL}/{model}/{re.sub(r'^[0-9]+-', '', source)}"


def load_snippet(repo_id: str, folder: str, revision: str) -> str:
    """Python that loads the published SAE with SAELens."""
    if revision == "main":
        return f'from sae_lens import SAE\n\nsae = SAE.from_pretrained("{repo_id}", "{folder}")\n'
    return ("from huggingface_hub import snapshot_download\nfrom sae_lens import SAE\n\n"
            f'root = snapshot_download("{repo_id}", revision="{revision}", allow_patterns=["{folder}/*"])\n'
            f'sae = SAE.load_from_disk(f"{{root}}/{folder}")\n')


# ---- files ---------------------------------------------------------------------------------------------------
def published_sae(sae: SAE, *, model_id: str | None, dataset_id: str | None, neuronpedia_id: str | None) -> SAE:
    """A copy of `sae` whose config names Hub ids (never local paths) and its Neuronpedia id.

    Raises:
        InvalidInputError: the SAE names a local model folder and no `model_id` is given, or it names no model.
    """
    from mistudio.saes.model import SAE

    out = SAE(copy.deepcopy(sae.cfg))
    out.load_state_dict(sae.state_dict())
    model = model_id or out.cfg.model_name
    if not model:
        raise InvalidInputError("the SAE names no model; pass --model-id with the model's Hub id (e.g. gpt2)")
    if is_local_reference(model):
        raise InvalidInputError(f"the SAE's model is the local folder {model!r}; pass --model-id with the model's "
                                "Hub id (e.g. gpt2) so the published config names a model others can load")
    out.cfg.model_name = model
    dataset = dataset_id or out.cfg.dataset_path
    out.cfg.dataset_path = None if is_local_reference(dataset) else dataset  # the caller notes a dropped one
    if neuronpedia_id:
        out.cfg.neuronpedia_id = neuronpedia_id
    return out


def write_sae_files(sae: SAE, dest: Path, frequency: np.ndarray | None) -> list[Path]:
    """Write the SAELens folder (`cfg.json`, `sae_weights.safetensors`, `sparsity.safetensors` when frequencies
    are known) at `dest` with the SAELens writer the export uses; return the files written."""
    from mistudio.export.saelens import log_sparsity
    from mistudio.saes.formats import write_saelens

    write_saelens(sae, dest, log_sparsity(frequency) if frequency is not None else None, overwrite=True)
    return sorted(p for p in dest.iterdir() if p.is_file())


def registry_entry(existing: dict[str, Any] | None, *, repo_id: str, model: str, sae_entry: dict[str, Any],
                   dashboards: str | None) -> dict[str, Any]:
    """The repo's `pretrained_saes.yaml`: the release of `repo_id` in `existing` (or a new one) with `sae_entry`
    added or replacing the entry of the same id."""
    existing = existing if isinstance(existing, dict) else {}
    name = next((k for k, v in existing.items() if isinstance(v, dict) and v.get("repo_id") == repo_id),
                release_name(repo_id))
    release = dict(existing.get(name) or {})
    saes = [s for s in release.get("saes") or [] if isinstance(s, dict) and s.get("id") != sae_entry["id"]]
    release.update({"conversion_func": None, "model": release.get("model") or model, "repo_id": repo_id,
                    "saes": sorted([*saes, sae_entry], key=lambda s: str(s["id"]))})
    if dashboards and not release.get("links"):
        release["links"] = {"dashboards": dashboards}
    return {**{k: v for k, v in existing.items() if k != name}, name: release}


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def sae_section(sae: SAE, folder: str, facts: PublishFacts, neuronpedia_url: str | None) -> str:
    """The markdown block describing one published SAE (a heading and a table)."""
    cfg = sae.cfg
    measured = f" (measured on {facts.measured_on})" if facts.measured_on else ""
    dead = "—" if facts.dead_fraction is None else (
        f"{facts.dead_fraction:.2%}" + (f" ({facts.n_dead} of {cfg.d_sae})" if facts.n_dead is not None else "")
        + measured)
    arch = cfg.architecture + (f" (k={cfg.k})" if cfg.k else "")
    rows = [("model", f"`{cfg.model_name}`"), ("hook", f"`{cfg.hook_name}`"), ("architecture", arch),
            ("width (d_sae)", str(cfg.d_sae)), ("d_in", str(cfg.d_in)),
            ("training dataset", f"`{cfg.dataset_path}`" if cfg.dataset_path else "—"),
            ("L0", _fmt(facts.l0, ".2f") + (measured if facts.l0 is not None else "")),
            ("explained variance", _fmt(facts.explained_variance, ".4f")
             + (measured if facts.explained_variance is not None else "")),
            ("dead features", dead),
            ("Neuronpedia", f"[{cfg.neuronpedia_id}]({neuronpedia_url})" if neuronpedia_url else "—")]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"## `{folder}`\n\n| | |\n|---|---|\n{table}\n"


def model_card(sae: SAE, *, repo_id: str, folder: str, revision: str, facts: PublishFacts,
               neuronpedia_url: str | None, registry: dict[str, Any]) -> str:
    """The repo's README.md: YAML front matter for the Hub, this SAE's facts, every SAE of the repo, loading."""
    model = str(sae.cfg.model_name)
    front: dict[str, Any] = {"library_name": "saelens", "tags": ["saelens", "sparse-autoencoder", "mistudio"]}
    if "/" in model:  # a Hub model id (owner/name): the Hub links the card to it
        front["base_model"] = model
    else:
        front["tags"].append(model)
    head = "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n"
    listing = ["| SAE id (folder) | L0 | explained variance | Neuronpedia |", "|---|---|---|---|"]
    for release in registry.values():
        if not isinstance(release, dict) or release.get("repo_id") != repo_id:
            continue
        for entry in release.get("saes") or []:
            np_id = entry.get("neuronpedia")
            link = f"[{np_id}]({NEURONPEDIA_URL}/{np_id})" if np_id else "—"
            listing.append(f"| `{entry.get('path', entry.get('id'))}` | {_fmt(entry.get('l0'), '.2f')} | "
                           f"{_fmt(entry.get('variance_explained'), '.4f')} | {link} |")
    body = (f"# Sparse autoencoders for `{model}`\n\nSparse autoencoders in the SAELens layout, published with "
            f"miStudio. Each SAE is a folder of this repo (`cfg.json`, `sae_weights.safetensors`, "
            f"`sparsity.safetensors`: log10 feature frequency); `{REGISTRY_FILE}` is the SAELens registry entry of "
            "the repo.\n\n" + sae_section(sae, folder, facts, neuronpedia_url)
            + "\n## Load with SAELens\n\n```python\n" + load_snippet(repo_id, folder, revision) + "```\n\n"
            + "## SAEs in this repository\n\n" + "\n".join(listing) + "\n")
    return head + "\n" + body


def folder_card(sae: SAE, *, repo_id: str, folder: str, revision: str, facts: PublishFacts,
                neuronpedia_url: str | None) -> str:
    """`{folder}/README.md`: this SAE's facts and how to load it (the root card lists every SAE)."""
    return (sae_section(sae, folder, facts, neuronpedia_url) + "\n```python\n"
            + load_snippet(repo_id, folder, revision) + "```\n")


# ---- hub -----------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def publish_errors(conn: HubConnection, repo_id: str, revision: str) -> Iterator[None]:
    """`hub.client.hub_errors`, with the messages of a write: which token to use, and that re-running resumes.

    Raises:
        HubAuthError: the Hub refused the token (401/403).
        HubUnreachableError: the Hub could not be reached, or an upload failed.
        HubError: the Hub refused the commit.
    """
    from huggingface_hub.errors import HfHubHTTPError

    owner = repo_id.split("/")[0]
    try:
        with hub_errors(conn, repo_id, revision):
            try:
                yield
            except RuntimeError as exc:  # huggingface_hub wraps a failed LFS upload in a RuntimeError
                cause = exc.__cause__
                if isinstance(cause, HfHubHTTPError):
                    raise cause from exc
                raise HubUnreachableError(f"{exc} ({type(cause).__name__}: {cause})") from exc
            except ValueError as exc:  # malformed answers, refused README metadata, LFS batch errors
                raise HubError(f"the Hub at {conn.endpoint} refused the upload to {repo_id!r}: {exc}") from exc
    except HubAuthError as exc:
        who = "the token given" if conn.token else "no token (anonymous)"
        raise HubAuthError(f"the Hub at {conn.endpoint} refused to let {who} write to {repo_id!r}: publishing "
                           f"needs a token with write access to {owner!r} (create one at "
                           "https://huggingface.co/settings/tokens), set as HF_TOKEN or passed with --token",
                           details={"repo_id": repo_id}) from exc
    except HubUnreachableError as exc:
        raise HubUnreachableError(f"{exc.message}; nothing is lost: run the same publish again and only what did "
                                  "not reach the Hub is sent", details={"repo_id": repo_id}) from exc


def file_ids(path: Path, chunk: int = 8 << 20) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file, read in chunks: the ids the Hub gives an LFS and a regular file."""
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as fh:
        while data := fh.read(chunk):
            sha256.update(data)
            blob.update(data)
    return sha256.hexdigest(), blob.hexdigest()


def remote_changes(conn: HubConnection, repo_id: str, revision: str,
                   local: dict[str, Path]) -> tuple[list[str], list[str]]:
    """(changed, unchanged) paths of `local` against the Hub: an LFS file by its sha256, a regular one by its git
    blob id (the ids `get_paths_info` gives)."""
    infos = conn.api.get_paths_info(repo_id, sorted(local), revision=revision)
    remote: dict[str, tuple[str | None, str | None]] = {}
    for info in infos:
        lfs = getattr(info, "lfs", None)
        remote[info.path] = (lfs.sha256 if lfs is not None else None, getattr(info, "blob_id", None))
    changed: list[str] = []
    unchanged: list[str] = []
    for path in sorted(local):
        local_sha256, local_blob = file_ids(local[path])
        sha256, blob = remote.get(path, (None, None))
        same = (sha256 == local_sha256) if sha256 else (blob == local_blob)
        (unchanged if path in remote and same else changed).append(path)
    return changed, unchanged


def _remote_registry(conn: HubConnection, repo_id: str, revision: str) -> dict[str, Any] | None:
    """The repo's `pretrained_saes.yaml` as published before (None when absent or not YAML)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    if not conn.api.get_paths_info(repo_id, [REGISTRY_FILE], revision=revision):
        return None
    try:
        path = hf_hub_download(repo_id, REGISTRY_FILE, revision=revision, endpoint=conn.endpoint, token=conn.token)
    except EntryNotFoundError:
        return None
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _token_for(token: str | None) -> HubConnection:
    """The connection to publish with.

    Raises:
        HubAuthError: no token at all (none given, no HF_TOKEN, none saved by `hf auth login`).
        HubUnreachableError: HF_HUB_OFFLINE is set.
    """
    from huggingface_hub import get_token

    conn = connect(token=token)
    if conn.token is None:
        saved = get_token()
        if not saved:
            raise HubAuthError("publishing needs a HuggingFace token with write access: pass --token, set HF_TOKEN, "
                               "or run `hf auth login` (create a token at https://huggingface.co/settings/tokens)")
        conn = HubConnection(endpoint=conn.endpoint, token=saved)
    return conn


def publish_sae(sae: SAE, request: PublishRequest, *, frequency: np.ndarray | None = None,
                facts: PublishFacts | None = None, callbacks: PublishCallbacks | None = None,
                work_dir: Path | None = None) -> PublishResult:
    """Publish `sae` (with its activation `frequency` for `sparsity.safetensors`) as `request` says; the files are
    staged in a temporary folder under `work_dir` (default: the system's).

    Raises:
        InvalidInputError: a repo id that is not OWNER/NAME, a bad folder or branch name, a local model path.
        HubAuthError: no token, or the Hub refused it.
        HubUnreachableError: the Hub could not be reached or an upload failed (running it again resumes).
        HubError: the Hub refused the commit.
    """
    from huggingface_hub import CommitOperationAdd

    callbacks = callbacks or PublishCallbacks()
    facts = facts or PublishFacts()
    repo_id = check_repo_id(request.repo_id)
    revision = _check_revision(request.revision)
    folder = _check_folder(request.folder or default_folder(sae))
    callbacks.stage(STAGES[0])
    out = published_sae(sae, model_id=request.model_id, dataset_id=request.dataset_id,
                        neuronpedia_id=request.neuronpedia_id)
    np_id = out.cfg.neuronpedia_id
    np_url = f"{NEURONPEDIA_URL}/{np_id}" if np_id else None
    notes = list(facts.notes)
    if sae.cfg.dataset_path and out.cfg.dataset_path is None:
        notes.append(f"the training dataset {sae.cfg.dataset_path!r} is a local path and is left out of the "
                     "published config; pass --dataset-id to name it")
    if frequency is None:
        notes.append("no extraction of this SAE: sparsity.safetensors is left out (run `mistudio extract` first "
                     "to include it and the measured L0)")
    conn = _token_for(request.token)
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mistudio-publish-", dir=work_dir) as tmp:
        stage = Path(tmp)
        local = {f"{folder}/{p.name}": p for p in write_sae_files(out, stage / "sae", frequency)}
        callbacks.progress(0.05, "SAELens folder written")
        callbacks.stage(STAGES[1])
        with publish_errors(conn, repo_id, revision):
            repo_url = str(conn.api.create_repo(repo_id, private=request.private, exist_ok=True))
            if revision != "main":
                conn.api.create_branch(repo_id, branch=revision, exist_ok=True)
            sae_entry: dict[str, Any] = {"id": folder, "path": folder}
            if facts.l0 is not None:
                sae_entry["l0"] = round(float(facts.l0), 4)
            if facts.explained_variance is not None:
                sae_entry["variance_explained"] = round(float(facts.explained_variance), 4)
            if np_id:
                sae_entry["neuronpedia"] = np_id
            registry = registry_entry(_remote_registry(conn, repo_id, revision), repo_id=repo_id,
                                      model=str(out.cfg.model_name), sae_entry=sae_entry,
                                      dashboards=source_set_url(np_id))
            texts = {
                REGISTRY_FILE: yaml.safe_dump(registry, sort_keys=True, allow_unicode=True, default_flow_style=False),
                CARD_FILE: model_card(out, repo_id=repo_id, folder=folder, revision=revision, facts=facts,
                                      neuronpedia_url=np_url, registry=registry),
                f"{folder}/{CARD_FILE}": folder_card(out, repo_id=repo_id, folder=folder, revision=revision,
                                                     facts=facts, neuronpedia_url=np_url),
            }
            for name, text in texts.items():
                target = stage / "texts" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
                local[name] = target
            changed, unchanged = remote_changes(conn, repo_id, revision, local)
            callbacks.progress(0.1, f"{len(changed)} file(s) to upload, {len(unchanged)} unchanged")
            callbacks.stage(STAGES[2])
            operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(local[p])) for p in changed]
            total = sum(local[p].stat().st_size for p in changed) or 1
            sent = 0
            for op in operations:  # one at a time, for progress; create_commit skips what is uploaded here
                conn.api.preupload_lfs_files(repo_id, additions=[op], revision=revision, free_memory=False)
                sent += local[op.path_in_repo].stat().st_size
                callbacks.progress(0.1 + 0.8 * sent / total, op.path_in_repo)
            callbacks.stage(STAGES[3])
            if operations:
                info = conn.api.create_commit(repo_id, operations, revision=revision,
                                              commit_message=f"Publish SAE {folder} with miStudio",
                                              commit_description=f"{out.cfg.architecture} SAE, {out.cfg.d_sae} "
                                              f"features, {out.cfg.hook_name} of {out.cfg.model_name}")
                oid: str | None = info.oid
                url: str | None = info.commit_url
            else:
                oid = conn.api.repo_info(repo_id, revision=revision).sha
                url = f"{conn.endpoint}/{repo_id}/commit/{oid}" if oid else None
    callbacks.progress(1.0, "published" if operations else "nothing changed")
    return PublishResult(repo_id=repo_id, folder=folder, revision=revision, repo_url=repo_url, commit_oid=oid,
                         commit_url=url, committed=bool(operations), uploaded=changed, unchanged=unchanged,
                         load_snippet=load_snippet(repo_id, folder, revision), neuronpedia_url=np_url, notes=notes)


# ---- the studio: a catalogued SAE, its latest extraction, a job -----------------------------------------------
def _measured(studio: Studio, sae_id: str, sae: SAE,
              extraction_id: str | None) -> tuple[np.ndarray | None, PublishFacts]:
    """The activation frequencies of the SAE's extraction and the card's figures (measured ones first, else the
    ones its source states)."""
    from mistudio.db.models import Extraction
    from mistudio.extraction.service import get_store

    extra = sae.cfg.extra or {}
    registry: dict[str, Any] = extra["registry"] if isinstance(extra.get("registry"), dict) else {}
    stated_l0 = extra.get("l0", extra.get("average_l0", registry.get("l0")))
    stated_ev = extra.get("explained_variance", extra.get("variance_explained", registry.get("variance_explained")))
    try:
        ext_id, store = get_store(studio, sae_id, extraction_id)
    except NotFoundError:
        if extraction_id:
            raise
        return None, PublishFacts(l0=stated_l0, explained_variance=stated_ev)
    with studio.sessions() as s:
        row = s.get(Extraction, ext_id)
        stats = dict(row.statistics or {}) if row is not None else {}
        dataset = row.dataset if row is not None else None
    arrays = store.summary_arrays()
    frequency = arrays["frequency"]
    n_tokens = int(store.manifest.get("n_tokens") or 0)
    source = "a local dataset" if is_local_reference(dataset) else f"`{dataset}`"
    ev = stats.get("explained_variance")
    facts = PublishFacts(l0=float(frequency.sum()), explained_variance=ev if ev is not None else stated_ev,
                         dead_fraction=float(arrays["dead"].mean()), n_dead=int(arrays["dead"].sum()),
                         measured_on=f"{n_tokens:,} tokens of {source}")
    if ev is None and stated_ev is not None:
        facts.notes.append("explained variance is the figure the SAE's source states; the extraction did not "
                           "measure it")
    return frequency, facts


def publish_catalogued(studio: Studio, sae_id: str, request: PublishRequest,
                       callbacks: PublishCallbacks | None = None) -> PublishResult:
    """Publish catalogued SAE `sae_id`, with the frequencies and figures of its latest (or the requested)
    extraction.

    Raises:
        NotFoundError: no such SAE or extraction.
        InvalidInputError, HubAuthError, HubUnreachableError, HubError: as `publish_sae`.
    """
    from mistudio.catalog.service import load_sae_for

    check_repo_id(request.repo_id)
    sae = load_sae_for(studio, sae_id)
    frequency, facts = _measured(studio, sae_id, sae, request.extraction_id)
    return publish_sae(sae, request, frequency=frequency, facts=facts, callbacks=callbacks,
                       work_dir=studio.settings.tmp_dir)


def start_publish(studio: Studio, sae_id: str, request: PublishRequest) -> PublishStarted:
    """Create an `hf_publish` job (not queued); the token stays in this process, out of the job's params.

    Raises:
        NotFoundError: no such SAE.
        InvalidInputError: a repo id that is not OWNER/NAME, a bad folder or branch name.
    """
    from mistudio.catalog.service import get_record

    check_repo_id(request.repo_id)
    if request.folder:
        _check_folder(request.folder)
    _check_revision(request.revision)
    with studio.sessions() as s:
        get_record(s, sae_id)
    params = {"sae_id": sae_id, **request.model_dump(exclude={"token"}, exclude_none=True)}
    job_id = studio.runner.create("hf_publish", params, sae_id=sae_id, secrets={"token": request.token})
    return PublishStarted(job_id=job_id, sae_id=sae_id)


@register_job_type("hf_publish")
def publish_job(ctx: JobContext[Studio], params: dict[str, Any]) -> dict[str, Any]:
    """Publish an SAE to the Hub with stages and progress; the result is a `PublishResult`."""
    ctx.set_stages(STAGES)
    fields = {k: v for k, v in params.items() if k != "sae_id"}
    request = PublishRequest.model_validate({**fields, "token": ctx.secret("token")})

    def progress(fraction: float, message: str | None) -> None:
        ctx.progress(fraction, message)

    result = publish_catalogued(ctx.studio, params["sae_id"], request, PublishCallbacks(ctx.stage, progress))
    return result.model_dump()
