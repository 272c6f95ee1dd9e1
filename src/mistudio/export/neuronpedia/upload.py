"""Upload an export through Neuronpedia's public API (`/api/model/new`, `/api/source-set/new`,
`/api/feature/upload-batch`) in batches of ≤128 features, recording each batch so a failed upload resumes. The
features are read from the archive's bulk-import rows, so the API gets the same numbers a bulk import shows, as far
as its fields go (`NOT_TAKEN_BY_API`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mistudio.db.models import UploadBatch
from mistudio.errors import HubAuthError, HubUnreachableError, InvalidInputError, NeuronpediaUploadError
from mistudio.export.layout import EXPLANATIONS, METADATA, SHA256SUMS, np_bulk_folder
from mistudio.export.neuronpedia.explanation_names import type_name
from mistudio.export.prepare import ExplanationDoc
from mistudio.export.validate.files import ExportFiles, load_json_bytes

DEFAULT_HOST = "https://www.neuronpedia.org"
MAX_FEATURES, MAX_TOKENS, MAX_LOGITS, MAX_EXPLANATION = 128, 1024, 20, 512
# What `/api/feature/upload-batch` takes per feature and per activation; everything else in the bulk-import rows
# (histograms, neuron alignment, correlated neurons/features, decoder cosine top-k, dataIndex, explanation
# methods/scores) has no field there and only reaches Neuronpedia through a bulk import.
API_FEATURE_FIELDS = ("index", "density", "topLogits", "bottomLogits", "explanations", "activations")
API_ACTIVATION_FIELDS = ("tokens", "values", "quantileMax", "quantileMin", "quantileFraction")
NOT_TAKEN_BY_API = ("freq_hist_data_bar_*", "logits_hist_data_bar_*", "neuron_alignment_*", "correlated_neurons_*",
                    "correlated_features_*", "topkCosSimIndices/Values", "decoder_weights_dist", "dataIndex",
                    "explanation model/scores")


def feature_payload(row: dict[str, Any], activations: list[dict[str, Any]],
                    explanations: list[ExplanationDoc]) -> dict[str, Any] | None:
    """One feature of `upload-batch` from its bulk-import `Neuron` row and `Activation` rows (SAEDashboard's
    numbers, as a bulk import would show them); None for a feature without activations."""
    acts = []
    for act in activations:
        item: dict[str, Any] = {"tokens": act["tokens"][:MAX_TOKENS], "values": act["values"][:MAX_TOKENS]}
        if act.get("binMin") is not None and act["binMin"] != -1:
            item.update(quantileMin=act["binMin"], quantileMax=act["binMax"], quantileFraction=act["binContains"])
        acts.append(item)
    if not acts:
        return None
    out: dict[str, Any] = {
        "index": int(row["index"]),
        "density": float(row.get("frac_nonzero") or 0.0),
        "topLogits": [{"token": t, "value": v}
                      for t, v in zip(row.get("pos_str") or [], row.get("pos_values") or [], strict=True)][:MAX_LOGITS],
        "bottomLogits": [{"token": t, "value": v}
                         for t, v in zip(row.get("neg_str") or [], row.get("neg_values") or [], strict=True)][:MAX_LOGITS],
        "activations": acts,
    }
    items = []
    for e in explanations:
        if not e.get("description"):
            continue
        item = {"text": e["description"][:MAX_EXPLANATION]}
        method = type_name(e.get("method"))
        if method is not None:
            item["methodName"] = method
        items.append(item)
    if items:
        out["explanations"] = items
    return out


def _activation_order(row: dict[str, Any]) -> tuple[float, float]:
    """Top group first (binMin -1), then the quantile bands from the highest; strongest example first."""
    bin_min = row.get("binMin")
    return (float("inf") if bin_min is None or bin_min == -1 else -float(bin_min), -float(row["maxValue"]))


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


def _export_contents(path: Path) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """(metadata, checksum key, upload-batch features) of an export's bulk-import rows.

    Raises:
        InvalidInputError: not a miStudio export, or one without the Neuronpedia outputs.
    """
    files = ExportFiles(path)
    try:
        names = files.names()
        if METADATA not in names:
            raise InvalidInputError(f"{path} is not a miStudio export (no {METADATA})")
        meta = json.loads(files.read(METADATA))
        key = files.read(SHA256SUMS).decode() if SHA256SUMS in names else str(path)
        folder = np_bulk_folder(meta["neuronpedia"]["model_id"], meta["neuronpedia"]["source_id"])
        row_files = {kind: sorted((n for n in names if n.startswith(f"{folder}/{kind}/")), key=_batch_number)
                     for kind in ("features", "activations")}
        if not row_files["features"]:
            raise InvalidInputError(f"{path} has no Neuronpedia rows ({folder}/features/); export it with "
                                    "--format neuronpedia or both")
        explanations: dict[int, list[ExplanationDoc]] = {}
        if EXPLANATIONS in names:
            doc = json.loads(files.read(EXPLANATIONS))
            explanations = {e["feature_index"]: e["explanations"] for e in doc["explanations"]}
        by_feature: dict[int, list[dict[str, Any]]] = {}
        for name in row_files["activations"]:
            for act in load_json_bytes(files.read(name), name)[0]:
                by_feature.setdefault(int(act["index"]), []).append(act)
        payloads = []
        for name in row_files["features"]:
            for row in load_json_bytes(files.read(name), name)[0]:
                index = int(row["index"])
                acts = sorted(by_feature.get(index, []), key=_activation_order)
                payload = feature_payload(row, acts, explanations.get(index, []))
                if payload is not None:
                    payloads.append(payload)
    finally:
        files.close()
    return meta, key, sorted(payloads, key=lambda p: p["index"])


def _batch_number(name: str) -> int:
    stem = name.rsplit("/", 1)[-1].removeprefix("batch-").split(".", 1)[0]
    return int(stem) if stem.isdigit() else -1


def upload_export(path: str | Path, api_key: str, sessions: sessionmaker[Session], *, host: str = DEFAULT_HOST,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Upload an export (zip or folder); batches already uploaded under the same export and target are skipped."""
    import hashlib

    meta, sums, payloads = _export_contents(Path(path))
    ids = meta["neuronpedia"]
    model_id, source_set, layer, source = ids["model_id"], ids["source_set"], ids["layer"], ids["source_id"]
    if ids.get("sae_id_suffix"):
        raise InvalidInputError("the upload API creates sources `{layer}-{set}` only; export without sae_id_suffix")
    upload_key = hashlib.sha256(f"{host}|{model_id}|{source}|{sums}".encode()).hexdigest()
    layers = int(meta.get("n_layers") or 0) or layer + 1  # the model's real layer count; older archives lack it
    _check(*_post(host, "/api/model/new", api_key, {"id": model_id, "layers": max(layers, layer + 1)}),
           f"creating model {model_id}", ok_conflict=True)
    _check(*_post(host, "/api/source-set/new", api_key, {"modelId": model_id, "name": source_set,
                                                        "description": f"{meta['architecture']} SAE from miStudio"}),
           f"creating source set {source_set}", ok_conflict=True)
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
            "uploaded_batches": uploaded, "skipped_batches": skipped, "upload_key": upload_key,
            "not_sent": list(NOT_TAKEN_BY_API)}


def _record(sessions: sessionmaker[Session], key: str, index: int, status: str, n: int, error: str | None) -> None:
    with sessions() as s, s.begin():
        row = s.scalars(select(UploadBatch).where(UploadBatch.upload_key == key,
                                                  UploadBatch.batch_index == index)).first()
        if row is None:
            row = UploadBatch(upload_key=key, batch_index=index)
            s.add(row)
        row.status, row.n_features, row.error_message = status, n, error
