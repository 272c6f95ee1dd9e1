/** One SAE: configuration, statistics, training link, extraction launcher and the feature browser. */
import { useCallback, useEffect, useRef, useState } from "react";
import { api } from "../api/client";
import type { SAE, SAEConfigView, SAEStatistics, Training } from "../api/types";
import { formatBytes, formatNumber, sourceLabel } from "../lib/format";
import { navigate } from "../lib/router";
import { exportActions } from "../stores/exportStore";
import { saeActions } from "../stores/saesStore";
import { ConfirmDialog } from "./ConfirmDialog";
import { ErrorMessage } from "./ErrorMessage";
import { ExplainFeatures } from "./ExplainFeatures";
import { ExtractionLauncher } from "./ExtractionLauncher";
import { FeatureBrowser } from "./FeatureBrowser";
import { PublishToHF } from "./PublishToHF";
import { TrainingCurves } from "./TrainingCurves";
import { TrainingLink } from "./TrainingLink";

function formatValue(v: unknown): string {
  if (typeof v === "number") return formatNumber(v, 4);
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.every(([, x]) => typeof x === "number" || typeof x === "string" || typeof x === "boolean" || x === null)) {
      return entries.map(([k, x]) => `${k} ${typeof x === "number" ? formatNumber(x, 4) : String(x)}`).join(" · ");
    }
  }
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

/** Key/value rows; a nested `config` object is shown inline first. */
function KeyValues({ data, testId }: { data: Record<string, unknown>; testId?: string }) {
  const nested = data.config && typeof data.config === "object" ? (data.config as Record<string, unknown>) : {};
  const merged = { ...nested, ...Object.fromEntries(Object.entries(data).filter(([k]) => k !== "config")) };
  const rows = Object.entries(merged).filter(([, v]) => v !== null && v !== undefined && v !== "");
  if (rows.length === 0) return <p className="muted">Nothing recorded.</p>;
  return (
    <dl className="kv" data-testid={testId}>
      {rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd className="mono">{formatValue(v)}</dd>
        </div>
      ))}
    </dl>
  );
}

export function SAEDetail({ saeId }: { saeId: string }) {
  const [sae, setSAE] = useState<SAE | null>(null);
  const [config, setConfig] = useState<SAEConfigView | null>(null);
  const [stats, setStats] = useState<SAEStatistics | null>(null);
  const [training, setTraining] = useState<Training | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [sideError, setSideError] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [labelsNote, setLabelsNote] = useState<string | null>(null);
  const [labelsError, setLabelsError] = useState<string | null>(null);
  const [labelsVersion, setLabelsVersion] = useState(0);
  const [explaining, setExplaining] = useState(false);
  const labelsInput = useRef<HTMLInputElement>(null);
  const openExport = exportActions.openFor;
  const remove = saeActions.remove;

  const load = useCallback(async () => {
    try {
      const record = await api.getSAE(saeId);
      setSAE(record);
      setError(null);
      if (record.training_id) void api.getTraining(record.training_id).then(setTraining, () => setTraining(null));
      if (record.status !== "ready") return;
      const [cfg, st] = await Promise.allSettled([api.saeConfig(saeId), api.saeStatistics(saeId)]);
      if (cfg.status === "fulfilled") setConfig(cfg.value);
      if (st.status === "fulfilled") setStats(st.value);
      const failed = [cfg, st].find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
      setSideError(failed ? (failed.reason as Error).message : null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, [saeId]);

  useEffect(() => {
    void load();
  }, [load]);
  useEffect(() => {
    if (sae && window.location.hash === "#extract") document.getElementById("extract")?.scrollIntoView();
  }, [sae]);

  const importLabels = async (file: File | undefined) => {
    if (!file) return;
    setLabelsNote(null);
    setLabelsError(null);
    try {
      const r = await api.importLabels(saeId, file);
      setLabelsNote(`Imported ${r.imported} explanation(s) for ${r.features} feature(s) from ${file.name}.`);
      setLabelsVersion((v) => v + 1);
    } catch (e) {
      setLabelsError(`Labels import from ${file.name} failed: ${(e as Error).message}`);
    } finally {
      if (labelsInput.current) labelsInput.current.value = "";
    }
  };

  if (error) return <section className="panel"><ErrorMessage message={error} /><a href="/" onClick={(e) => { e.preventDefault(); navigate("/"); }}>← Back to SAEs</a></section>;
  if (!sae) return <section className="panel"><p className="muted">Loading…</p></section>;

  return (
    <section className="panel" aria-labelledby="sae-title" data-testid="sae-detail">
      <nav className="breadcrumbs"><a href="/" onClick={(e) => { e.preventDefault(); navigate("/"); }}>SAEs</a> / {sae.name}</nav>
      <header className="panel-header">
        <div>
          <span className={`badge badge-${sae.source}`}>{sourceLabel(sae.source)}</span>
          <h1 id="sae-title">{sae.name}</h1>
          <p className="muted">{sae.model_name ?? "unknown model"} · layer {sae.layer ?? "?"} · <span className="mono">{sae.hook_name ?? "?"}</span> · {sae.d_in} → {sae.d_sae} · {sae.architecture}</p>
        </div>
        <div className="actions">
          <button type="button" className="primary" disabled={sae.status !== "ready"} onClick={() => openExport(sae.id)}>Export to Neuronpedia</button>
          <button type="button" disabled={sae.status !== "ready"}
            onClick={() => navigate(`/saes/${encodeURIComponent(sae.id)}/inference`)}>Which features fire?</button>
          <button type="button" disabled={(sae.n_features_extracted ?? 0) === 0} onClick={() => setExplaining(true)}
            title={(sae.n_features_extracted ?? 0) === 0 ? "Extract feature dashboards first" : undefined}>Explain features…</button>
          <button type="button" onClick={() => labelsInput.current?.click()}>Import labels…</button>
          <input ref={labelsInput} type="file" hidden accept=".csv,.json" aria-label="Labels file"
            data-testid="labels-file" onChange={(e) => void importLabels(e.target.files?.[0])} />
          <button type="button" className="danger" onClick={() => setConfirming(true)}>Delete</button>
        </div>
      </header>
      {sae.status === "ready" && <PublishToHF saeId={sae.id} />}
      {labelsNote && <p className="notice" role="status" data-testid="labels-imported">{labelsNote}</p>}
      <ErrorMessage message={labelsError} testId="labels-error" />
      <div className="detail-grid">
        <section className="card" aria-labelledby="config-title">
          <h2 id="config-title">Configuration</h2>
          {config ? <KeyValues data={config} testId="sae-config" /> : <p className="muted">{sae.status === "ready" ? "Loading…" : `Status: ${sae.status}`}</p>}
        </section>
        <section className="card" aria-labelledby="stats-title">
          <h2 id="stats-title">Statistics</h2>
          <dl className="kv">
            <div><dt>format</dt><dd>{sae.format ?? "—"}</dd></div>
            <div><dt>size</dt><dd>{formatBytes(sae.size_bytes)}</dd></div>
            <div><dt>features extracted</dt><dd>{(sae.n_features_extracted ?? 0).toLocaleString("en-US")}</dd></div>
            {sae.repo_id && <div><dt>source</dt><dd className="mono">{sae.repo_id}/{sae.path_in_repo}{sae.revision ? `@${sae.revision}` : ""}</dd></div>}
          </dl>
          {stats && <KeyValues data={stats} testId="sae-statistics" />}
          <ErrorMessage message={sideError} />
          <h3>Training</h3>
          {training ? (
            <p data-testid="training-link">
              <strong>{training.name}</strong> · {training.dataset ?? "dataset unknown"}
              {training.n_training_tokens ? ` · ${training.n_training_tokens.toLocaleString("en-US")} tokens` : ""}
            </p>
          ) : sae.training_id ? <p className="muted">Training {sae.training_id}</p> : (
            <>
              <p className="muted">Not linked to a training run.</p>
              <TrainingLink saeId={sae.id} onLinked={() => void load()} />
            </>
          )}
        </section>
      </div>
      {training && training.status !== "recorded" && <TrainingCurves trainingId={training.id} />}
      {sae.status === "ready" && <ExtractionLauncher sae={sae} onFinished={() => void load()} />}
      {(sae.n_features_extracted ?? 0) > 0 && <FeatureBrowser saeId={sae.id} key={`${sae.latest_extraction_id ?? "none"}-${labelsVersion}`} />}
      {explaining && (
        <ExplainFeatures saeId={sae.id} onClose={() => setExplaining(false)}
          onFinished={() => setLabelsVersion((v) => v + 1)} />
      )}
      {confirming && (
        <ConfirmDialog title="Delete SAE" confirmLabel="Delete"
          message={`Delete "${sae.name}" and its files and feature data? This cannot be undone.`}
          onConfirm={async () => { await remove(sae.id); navigate("/"); }}
          onClose={() => setConfirming(false)} />
      )}
    </section>
  );
}
