"""Upload an export through Neuronpedia's public API (`/api/model/new`, `/api/source-set/new`,
`/api/feature/upload-batch`) in batches of ≤128 features, recording each batch so a failed upload resumes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mistudio.db.models import UploadBatch
from mistudio.errors import HubAuthError, HubUnreachableError, InvalidInputError, NeuronpediaUploadError
from mistudio.export.layout import EXPLANATIONS, METADATA, SHA256SUMS, feature_index_of
from mistudio.export.prepare import ExplanationDoc
from mistudio.export.validate.files import ExportFiles, load_json_bytes

DEFAULT_HOST = "https://www.neuronpedia.org"
MAX_FEATURES, MAX_TOKENS, MAX_LOGITS, MAX_EXPLANATION = 128, 1024, 20, 512


def feature_payload(doc: dict[str, Any], explanations: list[ExplanationDoc]) -> dict[str, Any] | None:
    """One feature of `upload-batch` from its export document (None for features without examples)."""
    acts = []
    for ex in doc.get("activations") or []:
        act: dict[str, Any] = {"tokens": ex["tokens"][:MAX_TOKENS], "values": ex["values"][:MAX_TOKENS]}
        if ex.get("bin_min", -1) != -1:
            act.update(quantileMin=ex["bin_min"], quantileMax=ex["bin_max"], quantileFraction=ex["bin_contains"])
        acts.append(act)
    if not acts:
        return None
    logits = doc.get("logits") or {}
    out: dict[str, Any] = {
        "index": int(doc["feature_index"]),
        "density": float(doc["statistics"].get("activation_frequency", 0.0)),
        "topLogits": [{"token": t["token"], "value": t["value"]} for t in (logits.get("top_positive") or [])[:MAX_LOGITS]],
        "bottomLogits": [{"token": t["token"], "value": t["value"]}
                         for t in (logits.get("top_negative") or [])[:MAX_LOGITS]],
        "activations": acts,
    }
    texts = [e["description"][:MAX_EXPLANATION] for e in explanations if e.get("description")]
    if texts:
        out["explanations"] = [{"text": t} for t in texts]
    return out


def _post(host: str, route: str, api_key: str, body: dict[str, Any], timeout: float = 60.0) -> tuple[int, dict]:
    req = urllib.request.Request(f"{host.rstrip('/')}{route}", data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", "x-api-key": api_key})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"{}")
        except json.JSONDecodeError:
            payload = {}
        return exc.code, payload
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise HubUnreachableError(f"cannot reach Neuronpedia at {host}: {exc}") from exc


def _check(status: int, payload: dict, what: str, ok_conflict: bool = False) -> None:
    if status == 401 or status == 403:
        raise HubAuthError(f"Neuronpedia refused the API key while {what}; check --api-key")
    if status == 409 and ok_conflict:
        return
    if status >= 300:
        raise NeuronpediaUploadError(f"Neuronpedia answered {status} while {what}: {payload.get('message', payload)}")


def _export_contents(path: Path) -> tuple[dict[str, Any], str, Iterator[dict[str, Any]],
                                          dict[int, list[ExplanationDoc]]]:
    files = ExportFiles(path)
    names = files.names()
    if METADATA not in names:
        raise InvalidInputError(f"{path} is not a miStudio export (no {METADATA})")
    meta = json.loads(files.read(METADATA))
    key = files.read(SHA256SUMS).decode() if SHA256SUMS in names else str(path)
    explanations: dict[int, list[ExplanationDoc]] = {}
    if EXPLANATIONS in names:
        doc = json.loads(files.read(EXPLANATIONS))
        explanations = {e["feature_index"]: e["explanations"] for e in doc["explanations"]}
    indexed = {n: index for n in names if (index := feature_index_of(n)) is not None}
    feature_names = sorted(indexed, key=indexed.__getitem__)

    def docs() -> Iterator[dict[str, Any]]:
        for name in feature_names:
            yield load_json_bytes(files.read(name), name)[0]
        files.close()

    return meta, key, docs(), explanations


def upload_export(path: str | Path, api_key: str, sessions: sessionmaker[Session], *, host: str = DEFAULT_HOST,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Upload an export (zip or folder); batches already uploaded under the same export and target are skipped."""
    import hashlib

    meta, sums, docs, explanations = _export_contents(Path(path))
    ids = meta["neuronpedia"]
    model_id, source_set, layer, source = ids["model_id"], ids["source_set"], ids["layer"], ids["source_id"]
    if ids.get("sae_id_suffix"):
        raise InvalidInputError("the upload API creates sources `{layer}-{set}` only; export without sae_id_suffix")
    upload_key = hashlib.sha256(f"{host}|{model_id}|{source}|{sums}".encode()).hexdigest()
    _check(*_post(host, "/api/model/new", api_key, {"id": model_id, "layers": max(1, layer + 1)}),
           f"creating model {model_id}", ok_conflict=True)
    _check(*_post(host, "/api/source-set/new", api_key, {"modelId": model_id, "name": source_set,
                                                        "description": f"{meta['architecture']} SAE from miStudio"}),
           f"creating source set {source_set}", ok_conflict=True)
    payloads = [p for d in docs if (p := feature_payload(d, explanations.get(d["feature_index"], [])))]
    batches = [payloads[i:i + MAX_FEATURES] for i in range(0, len(payloads), MAX_FEATURES)]
    with sessions() as s:
        done = set(s.scalars(select(UploadBatch.batch_index).where(UploadBatch.upload_key == upload_key,
                                                                   UploadBatch.status == "done")))
    uploaded = skipped = 0
    for k, batch in enumerate(batches):
        if k in done:
            skipped += 1
            continue
        status, payload = _post(host, "/api/feature/upload-batch", api_key,
                                {"modelId": model_id, "source": source, "features": batch})
        ok = status < 300
        _record(sessions, upload_key, k, "done" if ok else "failed", len(batch),
                None if ok else f"{status}: {payload.get('message', payload)}")
        _check(status, payload, f"uploading batch {k + 1}/{len(batches)} (re-run to resume from it)")
        uploaded += 1
        if progress is not None:
            progress(k + 1, len(batches))
    return {"url": f"{host.rstrip('/')}/{model_id}/{source}", "n_features": len(payloads), "n_batches": len(batches),
            "uploaded_batches": uploaded, "skipped_batches": skipped, "upload_key": upload_key}


def _record(sessions: sessionmaker[Session], key: str, index: int, status: str, n: int, error: str | None) -> None:
    with sessions() as s, s.begin():
        row = s.scalars(select(UploadBatch).where(UploadBatch.upload_key == key,
                                                  UploadBatch.batch_index == index)).first()
        if row is None:
            row = UploadBatch(upload_key=key, batch_index=index)
            s.add(row)
        row.status, row.n_features, row.error_message = status, n, error
