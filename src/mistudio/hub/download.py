"""Download exactly the files of one SAE from the Hub, pinned to one commit, resumable and cancellable.

Files are fetched into a staging folder beside `dest_dir` (`.{name}.partial`), each one first as
`{file}.part`; an interrupted file is resumed with an HTTP Range request on the next call (as long as the
commit is the same). Only when every file is complete is the staging folder renamed to `dest_dir`, so a
cancelled or failed download never leaves a finished-looking SAE behind.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from huggingface_hub.file_download import http_get
from huggingface_hub.utils import silent_tqdm

from mistudio.errors import ConflictError, JobCancelled, NotFoundError
from mistudio.fsutil import safe_join
from mistudio.hub.browse import RepoListing
from mistudio.hub.client import connect, hub_errors, resolve_commit
from mistudio.hub.layout import sae_files
from mistudio.saes.formats import classify_paths
from mistudio.saes.gemma_scope_paths import gemma_scope_path, parse_leaf, resolve_choice

__all__ = ["DownloadResult", "download_sae", "gemma_scope_path", "partial_dir", "resolve_gemma_scope"]

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]
COMMIT_MARKER = ".commit"
_CANCEL_POLL_S = 0.25


@dataclass
class DownloadResult:
    """What was downloaded: the local root, the SAE folder inside it, the commit, files and bytes, and the SAE's
    path in the repo (a folder, or a file / file stem for formats keeping several SAEs in one folder) and format."""

    local_dir: Path
    sae_dir: Path
    commit_sha: str
    files: list[str] = field(default_factory=list)
    total_bytes: int = 0
    sae_path: str = ""
    format: str = ""


class _Counter:
    """Bytes done so far across files; reports monotone progress and polls for cancellation."""

    def __init__(self, total: int, progress: ProgressFn | None, should_cancel: CancelFn | None) -> None:
        self.total, self.done, self.reported = total, 0, -1
        self._progress, self._should_cancel = progress, should_cancel
        self._last_poll = 0.0

    def report(self) -> None:
        if self._progress is not None and self.done > self.reported:
            self.reported = self.done
            self._progress(self.done, self.total)

    def check_cancel(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._should_cancel is None or (not force and now - self._last_poll < _CANCEL_POLL_S):
            return
        self._last_poll = now
        if self._should_cancel():
            raise JobCancelled("download cancelled; the files fetched so far are kept and resumed next time")


class _CountingWriter:
    """A file wrapper for `http_get` that counts the bytes written (and rewinds the count on truncate)."""

    def __init__(self, fh: BinaryIO, counter: _Counter) -> None:
        self._fh, self._counter = fh, counter

    def write(self, data: bytes) -> int:
        written = self._fh.write(data)
        self._counter.done += written
        self._counter.report()
        self._counter.check_cancel()
        return written

    def tell(self) -> int:
        return self._fh.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        before = self._fh.tell()
        after = self._fh.truncate(size)
        self._counter.done -= max(before - after, 0)
        return after


def download_sae(repo_id: str, path_in_repo: str, dest_dir: Path, revision: str | None = None,
                 token: str | None = None, progress: ProgressFn | None = None,
                 should_cancel: CancelFn | None = None, *, endpoint: str | None = None) -> DownloadResult:
    """Download the SAE at `path_in_repo` (a folder, or one of its files) of `repo_id` into `dest_dir`.

    The revision is resolved to a commit sha first and every file is fetched at that sha. Files keep their
    repo-relative paths under `dest_dir`; `DownloadResult.sae_dir` is the SAE's folder. `progress(done, total)`
    is called with bytes as they arrive; `should_cancel()` is polled between files and while streaming and
    makes the call raise `JobCancelled` (partial files are kept for a later resume)."""
    dest_dir = Path(dest_dir)
    if dest_dir.exists() and (not dest_dir.is_dir() or any(dest_dir.iterdir())):
        raise ConflictError(f"{dest_dir} already exists and is not empty; choose another destination")
    conn = connect(endpoint, token)
    commit = resolve_commit(conn, repo_id, revision)
    sha, sizes = commit.sha, commit.sizes
    folder, fmt = _find_sae(repo_id, sha, path_in_repo, sorted(sizes))
    files = sae_files(folder, fmt, sorted(sizes))
    counter = _Counter(sum(sizes[f] for f in files), progress, should_cancel)

    staging = partial_dir(dest_dir)
    marker = staging / COMMIT_MARKER
    if staging.exists() and (not marker.is_file() or marker.read_text().strip() != sha):
        shutil.rmtree(staging)  # left over from another commit: cannot be resumed
    staging.mkdir(parents=True, exist_ok=True)
    marker.write_text(sha)
    for name in files:
        target = safe_join(staging, name)
        part = target.with_name(target.name + ".part")
        counter.done += target.stat().st_size if target.is_file() else (part.stat().st_size if part.is_file() else 0)
    counter.report()

    for name in files:
        counter.check_cancel(force=True)
        target = safe_join(staging, name)
        if target.is_file() and target.stat().st_size == sizes[name]:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        resume = part.stat().st_size if part.is_file() else 0
        if resume > sizes[name]:
            counter.done -= resume
            part.unlink()
            resume = 0
        with hub_errors(conn, repo_id, revision), part.open("ab") as fh:
            http_get(conn.file_url(repo_id, name, sha), _CountingWriter(fh, counter),  # type: ignore[arg-type]
                     resume_size=resume, headers=conn.headers(), expected_size=sizes[name],
                     displayed_filename=name, tqdm_class=silent_tqdm)  # type: ignore[arg-type]
        os.replace(part, target)
    counter.check_cancel(force=True)

    marker.unlink()
    if dest_dir.exists():
        dest_dir.rmdir()
    staging.rename(dest_dir)
    counter.done = counter.total
    counter.report()
    local_folder = folder if _is_folder(folder, sorted(sizes)) else posixpath.dirname(folder)
    return DownloadResult(local_dir=dest_dir, sae_dir=dest_dir / local_folder if local_folder else dest_dir,
                          commit_sha=sha, files=files, total_bytes=counter.total, sae_path=folder, format=fmt)


def partial_dir(dest_dir: Path) -> Path:
    """The staging folder a download into `dest_dir` uses (kept after a failure or cancel, for resuming)."""
    return Path(dest_dir).with_name(f".{Path(dest_dir).name}.partial")


def _find_sae(repo_id: str, sha: str, path_in_repo: str, paths: list[str]) -> tuple[str, str]:
    """The (SAE path, format) named by `path_in_repo`: the SAE's folder, its path (a file or file stem for
    formats that keep several SAEs in one folder), or one of its files.

    Raises:
        NotFoundError: no SAE at `path_in_repo` (the message lists SAEs near it).
    """
    wanted = path_in_repo.strip("/")
    found = dict(classify_paths(paths))
    folder = posixpath.dirname(wanted)
    candidates = [wanted, posixpath.splitext(wanted)[0]] if wanted in set(paths) else [wanted]
    for candidate in candidates:
        if candidate in found:
            return candidate, found[candidate]
    for sae_path, fmt in found.items():  # a file of a file-level SAE sharing its folder with others
        if posixpath.dirname(sae_path) == folder and not _is_folder(sae_path, paths) \
                and wanted in sae_files(sae_path, fmt, paths):
            return sae_path, fmt
    if folder in found:
        return folder, found[folder]
    near = [f or "." for f in found if f.startswith(wanted)] or [f or "." for f in found]
    raise NotFoundError(f"no SAE at {wanted!r} in {repo_id}@{sha[:10]}; SAEs there include: "
                        f"{', '.join(near[:10]) or 'none'}")


def _is_folder(sae_path: str, paths: list[str]) -> bool:
    """Whether `sae_path` names a folder of the repo (rather than a file or a file stem)."""
    if not sae_path:
        return True
    prefix = sae_path + "/"
    return any(p.startswith(prefix) for p in paths)


def resolve_gemma_scope(listing: RepoListing, layer: int | None, width: int | str, l0: int) -> str:
    """The repo folder for (layer, width, L0) in a browsed Gemma Scope repo; NotFoundError lists valid choices."""
    keys = [k for k in (parse_leaf(e.path) for e in listing.saes if e.format == "gemma_scope") if k is not None]
    return resolve_choice(keys, layer, width, l0)
