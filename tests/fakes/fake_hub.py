"""A small HuggingFace-Hub-compatible HTTP server for tests, demos and browser end-to-end runs.

Layout of the served folder: one folder per repo, `ROOT/{owner}/{name}/`, holding one folder per
revision (branch) name, e.g. `ROOT/google/gemma-scope-2b-pt-res/main/layer_0/...`. An optional
`ROOT/{owner}/{name}/fakehub.json` sets `{"private": true, "token": "hf_x"}` (401 without that
Bearer token, like a private repo) or `{"gated": true, "token": ...}` (401 GatedRepo).
Commit shas are derived from the revision's content, so they are stable across runs.

It answers what `huggingface_hub` 2.4 needs for `HfApi.model_info/repo_info`, `list_repo_files`,
`list_repo_tree` (paginated), `parse_safetensors_file_metadata`, `hf_hub_download` and
`snapshot_download`: `/api/models/{repo}[/revision/{rev}]`, `/api/models/{repo}/tree/{rev}[/{path}]`,
`HEAD|GET /{repo}/resolve/{rev}/{file}` with ETag, X-Repo-Commit, X-Linked-Size/Etag and Range.

Writes (`create_repo`, `create_branch`, `get_paths_info`, `create_commit` / `upload_folder`) follow the Hub's
commit API as `huggingface_hub` 2.4 calls it: `POST /api/repos/create`, `POST /api/models/{repo}/branch/{b}`,
`POST /api/validate-yaml` (the README's front matter), `POST /api/models/{repo}/paths-info/{rev}`,
`POST /api/models/{repo}/preupload/{rev}` (upload mode per file: `lfs` for the suffixes a Hub repo's default
`.gitattributes` tracks, else `regular`; `oid` of the file already at that path), the LFS batch API
`POST /{repo}.git/info/lfs/objects/batch` (basic transfer: a `PUT` to a URL this server serves, then `verify`;
an object the server already holds gets no `actions`, so the client does not send it again) and
`POST /api/models/{repo}/commit/{rev}` (NDJSON: `header`, `file`, `lfsFile`, `deletedFile`, `deletedFolder`).
LFS objects are kept per repo under `ROOT/.fakehub-lfs/`, apart from commits, so a commit that failed after its
blobs were uploaded finds them there when it is retried. Writes need `Authorization: Bearer {write token}`
(`FakeHub(write_token=...)`, default `WRITE_TOKEN`), else 401. Xet: `huggingface_hub` picks Xet on the client
side alone (whenever `hf_xet` is installed and `HF_HUB_DISABLE_XET` is unset), never from a server answer, and
this server does not speak Xet's CAS protocol; the `writable_hub` fixture (tests/conftest_hub.py) sets
`huggingface_hub.constants.HF_HUB_DISABLE_XET = True`, so the client takes the LFS path above.

Command line: `python -m fakes.fake_hub --root DIR --port P [--populate]`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

WRITE_TOKEN = "hf_fakehub_write"
LFS_DIR = ".fakehub-lfs"
LFS_SUFFIXES = (".safetensors", ".npz", ".npy", ".pt", ".bin", ".pth")
PAGE_SIZE = 1000
_CHUNK = 64 * 1024
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class FileMeta:
    """One file of a revision: size, git blob id, sha256 (LFS oid)."""

    path: str
    size: int
    blob_id: str
    sha256: str

    @property
    def is_lfs(self) -> bool:
        return self.path.endswith(LFS_SUFFIXES)

    @property
    def etag(self) -> str:
        return self.sha256 if self.is_lfs else self.blob_id


@dataclass
class Revision:
    """A revision of a repo: its branch name, commit sha, folder and files."""

    name: str
    sha: str
    folder: Path
    files: dict[str, FileMeta]


@dataclass
class Fault:
    """A one-shot failure for GETs of one file: drop the connection after `drop_after` bytes,
    then answer `fail_status` to the next `fail_times` requests for that file."""

    repo_id: str
    filename: str
    drop_after: int | None = None
    fail_status: int | None = None
    fail_times: int = 0


@dataclass
class RequestRecord:
    """What the server saw: method, path, Range header, status, body bytes sent, Authorization."""

    method: str
    path: str
    range: str | None
    status: int
    bytes_sent: int
    authorization: str | None


@dataclass
class HubState:
    """Mutable server state shared by the handler threads."""

    root: Path
    chunk_delay: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    log: list[RequestRecord] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0  # requests parsed but not yet finished (and logged)
    write_tokens: set[str] = field(default_factory=lambda: {WRITE_TOKEN})
    commit_failures: int = 0  # answer 500 to this many commit requests (after their blobs were uploaded)
    _cache: dict[tuple[str, str], Revision] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.settled = threading.Condition(self.lock)

    def repo_dir(self, repo_id: str) -> Path | None:
        parts = repo_id.split("/")
        if len(parts) != 2 or any(p in ("", ".", "..") for p in parts):
            return None
        folder = self.root / parts[0] / parts[1]
        return folder if folder.is_dir() else None

    def repo_settings(self, repo_id: str) -> dict:
        folder = self.repo_dir(repo_id)
        cfg = folder / "fakehub.json" if folder else None
        return json.loads(cfg.read_text()) if cfg and cfg.is_file() else {}

    def revision(self, repo_id: str, rev: str) -> Revision | None:
        """The revision named `rev` (a branch folder or a commit sha), or None."""
        folder = self.repo_dir(repo_id)
        if folder is None:
            return None
        for branch in sorted(p.name for p in folder.iterdir() if p.is_dir()):
            if branch == rev or (_SHA_RE.match(rev) and self._load(repo_id, folder, branch).sha == rev):
                return self._load(repo_id, folder, branch)
        return None

    def _load(self, repo_id: str, folder: Path, branch: str) -> Revision:
        with self.lock:
            cached = self._cache.get((repo_id, branch))
            if cached is not None:
                return cached
            base = folder / branch
            files: dict[str, FileMeta] = {}
            for p in sorted(base.rglob("*")):
                if p.is_file():
                    data = p.read_bytes()
                    rel = p.relative_to(base).as_posix()
                    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                    files[rel] = FileMeta(rel, len(data), blob, hashlib.sha256(data).hexdigest())
            digest = hashlib.sha1(repo_id.encode() + branch.encode())
            for meta in files.values():
                digest.update(f"{meta.path}\0{meta.sha256}\n".encode())
            revision = Revision(branch, digest.hexdigest(), base, files)
            self._cache[(repo_id, branch)] = revision
            return revision

    def forget(self, repo_id: str, branch: str) -> None:
        """Drop the cached listing of a branch after a commit changed it."""
        with self.lock:
            self._cache.pop((repo_id, branch), None)

    def lfs_object(self, repo_id: str, oid: str) -> Path:
        """Where the LFS object `oid` (sha256) uploaded to `repo_id` is kept."""
        return self.root / LFS_DIR / repo_id / oid

    def take_fault(self, repo_id: str, filename: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.repo_id == repo_id and fault.filename == filename:
                    return fault
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    _counted = False  # this request was counted in HubState.in_flight

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Keep test output quiet; the request log lives in `FakeHub.requests`."""

    # ---- plumbing -------------------------------------------------------------------------
    @property
    def state(self) -> HubState:
        return self.server.state

    def handle_one_request(self) -> None:
        """Count the request as in flight from parsing until it is answered and logged, so a test that reads
        the log right after its client got the last byte sees this request too."""
        self._counted = False
        try:
            super().handle_one_request()
        finally:
            if self._counted:
                with self.state.settled:
                    self.state.in_flight -= 1
                    self.state.settled.notify_all()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:
            with self.state.lock:
                self.state.in_flight += 1
            self._counted = True
        return ok

    def _record(self, status: int, sent: int) -> None:
        with self.state.lock:
            self.state.log.append(
                RequestRecord(self.command, self.path, self.headers.get("Range"), status, sent,
                              self.headers.get("Authorization"))
            )

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        sent = 0
        if self.command != "HEAD":
            self.wfile.write(body)
            sent = len(body)
        self._record(status, sent)

    def _json(self, payload: object, headers: dict[str, str] | None = None) -> None:
        self._send(200, json.dumps(payload).encode(), headers)

    def _error(self, status: int, code: str | None, message: str, extra: dict[str, str] | None = None) -> None:
        headers = {"X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _authorized(self, repo_id: str) -> bool:
        """Answer 401 (and return False) when the repo is private or gated and the token is wrong."""
        settings = self.state.repo_settings(repo_id)
        if not (settings.get("private") or settings.get("gated")):
            return True
        if self.headers.get("Authorization") == f"Bearer {settings.get('token')}":
            return True
        code = "GatedRepo" if settings.get("gated") else "RepoNotFound"
        self._error(401, code, "Access to this repository is restricted; authenticate with a valid token.")
        return False

    def _revision(self, repo_id: str, rev: str) -> Revision | None:
        if self.state.repo_dir(repo_id) is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        if not self._authorized(repo_id):
            return None
        revision = self.state.revision(repo_id, rev)
        if revision is None:
            self._error(404, "RevisionNotFound", "Invalid rev id: " + rev)
        return revision

    # ---- routes ---------------------------------------------------------------------------
    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self._route()

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._route()

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._route_write()

    def do_PUT(self) -> None:  # noqa: N802 - stdlib name
        self._route_write()

    def _route(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        api = re.match(r"^/api/models/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+)(?:/(.*))?)?$", path)
        resolve = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if api:
            repo_id, kind, rev, sub = api.groups()
            if kind == "tree":
                self._tree(repo_id, rev, sub or "", query)
            else:
                self._info(repo_id, rev or "main")
        elif resolve:
            self._resolve(*resolve.groups())
        else:
            self._error(404, None, f"no route for {path}")

    def _info(self, repo_id: str, rev: str) -> None:
        revision = self._revision(repo_id, rev)
        if revision is None:
            return
        settings = self.state.repo_settings(repo_id)
        siblings = [
            {"rfilename": m.path, "size": m.size, "blobId": m.blob_id,
             **({"lfs": {"sha256": m.sha256, "size": m.size, "pointerSize": 134}} if m.is_lfs else {})}
            for m in revision.files.values()
        ]
        self._json({
            "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
            "author": repo_id.split("/")[0], "sha": revision.sha, "private": bool(settings.get("private")),
            "gated": "auto" if settings.get("gated") else False, "disabled": False, "tags": [],
            "downloads": 0, "likes": 0, "lastModified": "2026-01-01T00:00:00.000Z",
            "createdAt": "2026-01-01T00:00:00.000Z", "siblings": siblings,
        })

    def _tree(self, repo_id: str, rev: str, sub: str, query: dict[str, list[str]]) -> None:
        revision = self._revision(repo_id, rev)
        if revision is None:
            return
        sub = sub.strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = f"{sub}/" if sub else ""
        if sub and sub not in revision.files and not any(p.startswith(prefix) for p in revision.files):
            self._error(404, "EntryNotFound", f"{sub} does not exist on {rev}")
            return
        entries: dict[str, dict] = {}
        for meta in revision.files.values():
            if not meta.path.startswith(prefix):
                continue
            parts = meta.path[len(prefix):].split("/")
            depth = len(parts) if recursive else 1
            for i in range(1, min(depth, len(parts) - 1) + 1):
                folder = prefix + "/".join(parts[:i])
                entries.setdefault(folder, {"type": "directory", "path": folder, "oid": _dir_oid(folder)})
            if recursive or len(parts) == 1:
                entry = {"type": "file", "path": meta.path, "size": meta.size, "oid": meta.blob_id}
                if meta.is_lfs:
                    entry["lfs"] = {"oid": meta.sha256, "size": meta.size, "pointerSize": 134}
                entries[meta.path] = entry
        ordered = [entries[k] for k in sorted(entries)]
        start = int(query.get("cursor", ["0"])[0])
        page = ordered[start:start + PAGE_SIZE]
        headers = {}
        if start + PAGE_SIZE < len(ordered):
            host = self.headers.get("Host", "127.0.0.1")
            nxt = (f"http://{host}/api/models/{repo_id}/tree/{rev}/{sub}?recursive={str(recursive).lower()}"
                   f"&cursor={start + PAGE_SIZE}")
            headers["Link"] = f'<{nxt}>; rel="next"'
        self._json(page, headers)

    def _resolve(self, repo_id: str, rev: str, filename: str) -> None:
        revision = self._revision(repo_id, rev)
        if revision is None:
            return
        meta = revision.files.get(filename)
        commit = {"X-Repo-Commit": revision.sha}
        if meta is None:
            self._error(404, "EntryNotFound", f"{filename} does not exist on {rev}", commit)
            return
        headers = {**commit, "ETag": f'"{meta.etag}"', "Accept-Ranges": "bytes"}
        if meta.is_lfs:
            headers.update({"X-Linked-Etag": f'"{meta.sha256}"', "X-Linked-Size": str(meta.size)})
        fault = self.state.take_fault(repo_id, filename) if self.command == "GET" else None
        if fault is not None and fault.drop_after is None and fault.fail_times > 0:
            with self.state.lock:
                fault.fail_times -= 1
                if fault.fail_times <= 0:
                    self.state.faults.remove(fault)
            self._error(fault.fail_status or 500, None, "injected failure")
            return
        start, end = 0, meta.size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and self.command == "GET":
            match = re.match(r"bytes=(\d*)-(\d*)$", rng.strip())
            if match is None or (match.group(1) == "" and match.group(2) == ""):
                self._error(416, None, "bad range")
                return
            if match.group(1) == "":
                start = max(meta.size - int(match.group(2)), 0)
            else:
                start = int(match.group(1))
                end = min(int(match.group(2)), meta.size - 1) if match.group(2) else meta.size - 1
            if start >= meta.size:
                self._error(416, None, "range not satisfiable", {"Content-Range": f"bytes */{meta.size}"})
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{meta.size}"
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            self._record(status, 0)
            return
        self._stream(revision.folder / filename, start, end, status, fault)

    def _stream(self, path: Path, start: int, end: int, status: int, fault: Fault | None) -> None:
        limit = end - start + 1
        if fault is not None and fault.drop_after is not None:
            limit = min(limit, fault.drop_after)
            with self.state.lock:
                fault.drop_after = None
                if fault.fail_times <= 0:
                    self.state.faults.remove(fault)
        sent = 0
        with path.open("rb") as fh:
            fh.seek(start)
            try:
                while sent < limit:
                    chunk = fh.read(min(_CHUNK, limit - sent))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if self.state.chunk_delay:
                        self.wfile.flush()
                        time.sleep(self.state.chunk_delay)
            except (BrokenPipeError, ConnectionResetError):
                pass
        self._record(status, sent)
        if sent < end - start + 1:  # injected drop: cut the connection mid-body
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


    # ---- writes: the commit API ------------------------------------------------------------
    def _body(self) -> bytes:
        """The request body (Content-Length or chunked transfer encoding)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _writer(self) -> str | None:
        """The write token of the request, or None after answering 401."""
        auth = self.headers.get("Authorization") or ""
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if token in self.state.write_tokens:
            return token
        self._error(401, None, "Invalid credentials in Authorization header" if token else
                    "You must be authenticated to write to the Hub: pass a token with write access")
        return None

    def _route_write(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        body = self._body()
        api = re.match(r"^/api/models/([^/]+/[^/]+)/(preupload|commit|paths-info|branch)/(.+)$", path)
        batch = re.match(r"^/([^/]+/[^/]+)\.git/info/lfs/objects/batch$", path)
        blob = re.match(r"^/_fakehub/lfs/([^/]+/[^/]+)/([0-9a-f]{64})(/verify)?$", path)
        if self.command == "POST" and path == "/api/repos/create":
            self._create_repo(body)
        elif self.command == "POST" and path == "/api/validate-yaml":
            self._validate_yaml(body)
        elif self.command == "POST" and api:
            repo_id, kind, rev = api.groups()
            handler = {"preupload": self._preupload, "commit": self._commit, "paths-info": self._paths_info,
                       "branch": self._create_branch}[kind]
            handler(repo_id, rev, body)
        elif self.command == "POST" and batch:
            self._lfs_batch(batch.group(1), body)
        elif blob and self.command == "PUT" and not blob.group(3):
            self._lfs_put(blob.group(1), blob.group(2), body)
        elif blob and self.command == "POST" and blob.group(3):
            self._lfs_verify(blob.group(1), blob.group(2), body)
        else:
            self._error(404, None, f"no route for {self.command} {path}")

    def _create_repo(self, body: bytes) -> None:
        token = self._writer()
        if token is None:
            return
        payload = json.loads(body or b"{}")
        if payload.get("type") not in (None, "model"):
            self._error(400, None, "the fake hub hosts model repos only")
            return
        repo_id = f"{payload.get('organization') or 'fake-user'}/{payload['name']}"
        url = f"http://{self.headers.get('Host', '127.0.0.1')}/{repo_id}"
        if self.state.repo_dir(repo_id) is not None:
            self._send(409, json.dumps({"error": "You already created this model repo", "url": url}).encode())
            return
        parts = repo_id.split("/")
        if any(not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", part) for part in parts):
            self._error(400, None, f"invalid repo name {repo_id!r}")
            return
        folder = self.state.root / parts[0] / parts[1]
        (folder / "main").mkdir(parents=True)
        if payload.get("visibility") == "private":
            (folder / "fakehub.json").write_text(json.dumps({"private": True, "token": token}))
        self._json({"url": url, "name": repo_id, "id": hashlib.md5(repo_id.encode()).hexdigest()[:24]})

    def _validate_yaml(self, body: bytes) -> None:
        content = json.loads(body or b"{}").get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
        try:
            meta = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as exc:
            self._send(400, json.dumps({"errors": [{"message": f"invalid YAML: {exc}"}]}).encode())
            return
        if meta is not None and not isinstance(meta, dict):
            self._send(400, json.dumps({"errors": [{"message": "the metadata must be a YAML mapping"}]}).encode())
            return
        self._json({"errors": [], "warnings": []})

    def _write_target(self, repo_id: str, rev: str) -> Revision | None:
        """The branch a write goes to (after auth), or None after answering the error."""
        if self._writer() is None:
            return None
        revision = self._revision(repo_id, rev)
        if revision is not None and revision.name != rev:
            self._error(400, None, f"cannot write to a commit ({rev}); name a branch")
            return None
        return revision

    def _create_branch(self, repo_id: str, branch: str, body: bytes) -> None:
        if self._writer() is None:
            return
        start = json.loads(body or b"{}").get("startingPoint") or "main"
        source = self._revision(repo_id, start)
        if source is None:
            return
        target = source.folder.parent / branch
        if target.exists():
            self._error(409, None, f"Reference already exists: refs/heads/{branch}")
            return
        shutil.copytree(source.folder, target)
        self._json({})

    def _paths_info(self, repo_id: str, rev: str, body: bytes) -> None:
        revision = self._revision(repo_id, rev)
        if revision is None:
            return
        form = parse_qs(body.decode())
        out = []
        for path in form.get("paths", []):
            path = path.strip("/")
            meta = revision.files.get(path)
            if meta is not None:
                entry: dict = {"type": "file", "path": path, "size": meta.size, "oid": meta.blob_id}
                if meta.is_lfs:
                    entry["lfs"] = {"oid": meta.sha256, "size": meta.size, "pointerSize": 134}
                out.append(entry)
            elif any(p.startswith(path + "/") for p in revision.files):
                out.append({"type": "directory", "path": path, "oid": _dir_oid(path)})
        self._json(out)

    def _preupload(self, repo_id: str, rev: str, body: bytes) -> None:
        revision = self._write_target(repo_id, rev)
        if revision is None:
            return
        files = []
        for item in json.loads(body or b"{}").get("files", []):
            path = item["path"]
            lfs = path.endswith(LFS_SUFFIXES)
            meta = revision.files.get(path)
            oid = None if meta is None or meta.is_lfs != lfs else (meta.sha256 if lfs else meta.blob_id)
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": oid})
        self._json({"files": files, "commitOid": revision.sha})

    def _lfs_batch(self, repo_id: str, body: bytes) -> None:
        if self._writer() is None:
            return
        if self.state.repo_dir(repo_id) is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return
        payload = json.loads(body or b"{}")
        if payload.get("operation") != "upload":
            self._error(400, None, "the fake hub's LFS batch API takes uploads only")
            return
        host = f"http://{self.headers.get('Host', '127.0.0.1')}"
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry: dict = {"oid": oid, "size": size, "authenticated": True}
            stored = self.state.lfs_object(repo_id, oid)
            if not (stored.is_file() and stored.stat().st_size == size):
                href = f"{host}/_fakehub/lfs/{quote(repo_id)}/{oid}"
                entry["actions"] = {"upload": {"href": href, "header": {}},
                                    "verify": {"href": f"{href}/verify", "header": {}}}
            objects.append(entry)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
                   content_type="application/vnd.git-lfs+json")

    def _lfs_put(self, repo_id: str, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            self._error(400, None, f"uploaded content does not match its sha256 {oid}")
            return
        target = self.state.lfs_object(repo_id, oid)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{oid}.{threading.get_ident()}.part")
        tmp.write_bytes(body)
        tmp.replace(target)
        self._send(200, b"", content_type="text/plain")

    def _lfs_verify(self, repo_id: str, oid: str, body: bytes) -> None:
        if self._writer() is None:
            return
        stored = self.state.lfs_object(repo_id, oid)
        size = int(json.loads(body or b"{}").get("size", -1))
        if not stored.is_file() or stored.stat().st_size != size:
            self._error(404, None, f"LFS object {oid} of size {size} was not uploaded")
            return
        self._json({"success": True})

    def _commit(self, repo_id: str, rev: str, body: bytes) -> None:
        revision = self._write_target(repo_id, rev)
        if revision is None:
            return
        with self.state.lock:
            fail = self.state.commit_failures > 0
            self.state.commit_failures -= int(fail)
        if fail:
            self._error(500, None, "injected commit failure")
            return
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            self._error(400, None, "a commit starts with a header line")
            return
        parent = lines[0]["value"].get("parentCommit")
        if parent and not revision.sha.startswith(parent):
            self._error(412, None, f"parent commit {parent} is not the head of {rev} ({revision.sha})")
            return
        writes: dict[str, bytes | Path] = {}
        deletes: list[str] = []
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"].strip("/")
            if ".." in path.split("/") or not path:
                self._error(400, None, f"invalid path {value['path']!r}")
                return
            if key == "file":
                writes[path] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                stored = self.state.lfs_object(repo_id, value["oid"])
                if not stored.is_file():
                    self._error(422, None, f"LFS object {value['oid']} for {path} was never uploaded")
                    return
                writes[path] = stored
            elif key in ("deletedFile", "deletedFolder"):
                deletes.append(path)
            else:
                self._error(400, None, f"unknown commit operation {key!r}")
                return
        for path in deletes:
            target = revision.folder / path
            if target.is_dir():
                shutil.rmtree(target)
            elif target.is_file():
                target.unlink()
            else:
                self._error(404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
                return
        for path, content in writes.items():
            target = revision.folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_bytes(content)
        self.state.forget(repo_id, revision.name)
        sha = self.state.revision(repo_id, revision.name)
        assert sha is not None
        host = f"http://{self.headers.get('Host', '127.0.0.1')}"
        self._json({"success": True, "commitOid": sha.sha, "commitUrl": f"{host}/{repo_id}/commit/{sha.sha}",
                    "hookOutput": ""})


def _dir_oid(path: str) -> str:
    return hashlib.sha1(path.encode()).hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState


class FakeHub:
    """Run the fake hub in a background thread: `with FakeHub(root) as hub: hub.endpoint`."""

    def __init__(self, root: Path, *, host: str = "127.0.0.1", port: int = 0, chunk_delay: float = 0.0,
                 write_token: str = WRITE_TOKEN) -> None:
        self.state = HubState(root=Path(root), chunk_delay=chunk_delay, write_tokens={write_token})
        self._server = _Server((host, port), _Handler)
        self._server.state = self.state
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """Base URL to use as HF_ENDPOINT / `endpoint=`."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the requests seen so far (waiting up to 5 s for requests still being answered)."""
        with self.state.settled:
            self.state.settled.wait_for(lambda: self.state.in_flight == 0, timeout=5.0)
            return list(self.state.log)

    def clear_log(self) -> None:
        """Forget the requests seen so far."""
        with self.state.lock:
            self.state.log.clear()

    def inject_fault(self, repo_id: str, filename: str, *, drop_after: int | None = None,
                     fail_status: int | None = None, fail_times: int = 0) -> None:
        """Make the next GET of `filename` drop after `drop_after` bytes, then fail `fail_times` times."""
        with self.state.lock:
            self.state.faults.append(Fault(repo_id, filename, drop_after, fail_status, fail_times))

    def fail_next_commits(self, times: int = 1) -> None:
        """Answer 500 to the next `times` commit requests (their LFS blobs stay uploaded)."""
        with self.state.lock:
            self.state.commit_failures = times

    def commit_sha(self, repo_id: str, revision: str = "main") -> str:
        """The commit sha the server reports for `revision`."""
        rev = self.state.revision(repo_id, revision)
        if rev is None:
            raise KeyError(f"{repo_id}@{revision}")
        return rev.sha

    def file_path(self, repo_id: str, filename: str, revision: str = "main") -> Path:
        """The served source file (the oracle for byte comparisons)."""
        owner, name = repo_id.split("/")
        return self.state.root / owner / name / revision / filename

    def start(self) -> FakeHub:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (if started) and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: serve `--root` on `--port` until interrupted."""
    parser = argparse.ArgumentParser(description="Serve a folder of repos as a fake HuggingFace Hub.")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--populate", action="store_true", help="build the demo repos into --root first")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds to sleep per 64 KiB sent")
    args = parser.parse_args(argv)
    if args.populate:
        from fakes.hub_repos import build_all

        build_all(args.root)
    hub = FakeHub(args.root, host=args.host, port=args.port, chunk_delay=args.chunk_delay)
    print(f"fake hub serving {args.root} at {hub.endpoint}", flush=True)
    try:
        hub._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        hub._server.server_close()


if __name__ == "__main__":
    main()
