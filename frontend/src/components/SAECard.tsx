/** One SAE in the SAEs panel: source badge, dimensions, live download progress and its actions. */
import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { SAE } from "../api/types";
import { formatBytes, sourceLabel } from "../lib/format";
import { navigate } from "../lib/router";
import { exportActions } from "../stores/exportStore";
import { jobActions, useJob } from "../stores/jobsStore";
import { saeActions } from "../stores/saesStore";
import { ConfirmDialog } from "./ConfirmDialog";
import { ErrorMessage } from "./ErrorMessage";
import { ProgressBar } from "./ProgressBar";

export function SAECard({ sae }: { sae: SAE }) {
  const [confirming, setConfirming] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const { remove, load: reload } = saeActions;
  const openExport = exportActions.openFor;
  const watch = jobActions.watch;
  const job = useJob(sae.job_id);
  const downloading = sae.status === "downloading";

  useEffect(() => {
    if (downloading && sae.job_id) watch(sae.job_id, () => void reload());
  }, [downloading, sae.job_id, watch, reload]);

  const convert = async () => {
    setError(null);
    setNotice(null);
    try {
      const out = await api.convertSAE(sae.id, "saelens");
      setNotice(`Converted to ${out.format}: ${out.path}`);
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const detail = `/saes/${encodeURIComponent(sae.id)}`;
  const extracted = sae.n_features_extracted ?? 0;
  return (
    <article className="card sae-card" data-testid="sae-card" data-sae-id={sae.id} aria-label={sae.name}>
      <header className="card-header">
        <span className={`badge badge-${sae.source}`} data-testid="source-badge">{sourceLabel(sae.source)}</span>
        <h3>
          <a href={detail} onClick={(e) => { e.preventDefault(); navigate(detail); }}>{sae.name}</a>
        </h3>
        {sae.status !== "ready" && <span className={`status status-${sae.status}`}>{sae.status}</span>}
      </header>
      <dl className="facts">
        <div><dt>Model</dt><dd>{sae.model_name ?? "—"}</dd></div>
        <div><dt>Layer</dt><dd>{sae.layer ?? "—"}</dd></div>
        <div><dt>Hook</dt><dd className="mono">{sae.hook_name ?? "—"}</dd></div>
        <div>
          <dt>Dimensions</dt>
          <dd data-testid="dimensions">{sae.d_in ?? "?"} → {sae.d_sae ?? "?"}</dd>
        </div>
        <div><dt>Architecture</dt><dd>{sae.architecture ?? "—"}</dd></div>
        <div><dt>Features</dt><dd>{extracted > 0 ? `${extracted.toLocaleString("en-US")} extracted` : "not extracted"}</dd></div>
        {sae.repo_id && <div><dt>Source</dt><dd className="mono">{sae.repo_id}{sae.path_in_repo ? `/${sae.path_in_repo}` : ""}</dd></div>}
        {sae.size_bytes ? <div><dt>Size</dt><dd>{formatBytes(sae.size_bytes)}</dd></div> : null}
      </dl>
      {downloading && (
        <div className="card-progress">
          <ProgressBar value={job?.progress} label={`Downloading ${sae.name}`} small />
          <span className="muted progress-message">{job?.message ?? "waiting…"}</span>
        </div>
      )}
      {sae.status === "error" && <ErrorMessage message={sae.error_message ?? "this SAE failed to download"} />}
      <ErrorMessage message={error} />
      {notice && <p className="notice" role="status">{notice}</p>}
      <div className="actions">
        <button type="button" disabled={sae.status !== "ready"} onClick={() => navigate(`${detail}#extract`)}>Extract</button>
        <button type="button" disabled={sae.status !== "ready"} onClick={() => openExport(sae.id)}>Export</button>
        <button type="button" disabled={sae.status !== "ready"} onClick={convert}>Convert</button>
        <button type="button" disabled={sae.status !== "ready"} onClick={() => navigate(`${detail}/steer`)}>Steering</button>
        <button type="button" className="danger" onClick={() => setConfirming(true)}>Delete</button>
      </div>
      {confirming && (
        <ConfirmDialog
          title="Delete SAE"
          message={`Delete "${sae.name}" and its files and feature data? This cannot be undone.`}
          confirmLabel="Delete"
          onConfirm={() => remove(sae.id)}
          onClose={() => setConfirming(false)}
        />
      )}
    </article>
  );
}
