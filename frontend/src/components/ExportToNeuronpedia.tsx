/** The Neuronpedia export dialog: configuration, estimate, missing-data warning, validation; then progress/complete. */
import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { Export, FeatureSelection, SAE } from "../api/types";
import { formatBytes, formatDuration } from "../lib/format";
import { exportActions, useExportChecks, useExportPhase, useExportSetup, type ExportSettings } from "../stores/exportStore";
import { ErrorMessage } from "./ErrorMessage";
import { ExportComplete } from "./ExportComplete";
import { ExportProgress } from "./ExportProgress";
import { Modal } from "./Modal";
import { ValidationReportView } from "./ValidationReportView";

/** The two logit-lens conventions of the Neuronpedia outputs, with what each means. */
export const LOGIT_LENSES: [NonNullable<ExportSettings["np_logit_lens"]>, string, string][] = [
  ["neuronpedia", "Neuronpedia convention (recommended)",
    "the decoder direction times the model's raw unembedding, as Neuronpedia's own dashboards compute it"],
  ["folded", "miStudio folded",
    "the final norm's gain folded into the unembedding, as this app's feature dashboards show it"],
];

const FORMATS: [ExportSettings["format"], string][] = [
  ["neuronpedia", "Neuronpedia JSON only"],
  ["both", "Neuronpedia JSON + SAELens (recommended)"],
  ["saelens", "SAELens format only"],
];

/** The dialog for whichever export phase the store is in. */
export function ExportToNeuronpedia() {
  const { phase, saeId } = useExportPhase();
  const { close } = exportActions;
  const [sae, setSAE] = useState<SAE | null>(null);
  useEffect(() => {
    if (saeId) api.getSAE(saeId).then(setSAE, () => setSAE(null));
  }, [saeId]);
  if (phase === "closed" || !saeId) return null;
  if (phase === "progress") return <ExportProgress sae={sae} />;
  if (phase === "complete") return <ExportComplete sae={sae} />;
  return <ExportConfigDialog sae={sae} onClose={close} />;
}

type SelectionMode = NonNullable<FeatureSelection["mode"]>;

function ExportConfigDialog({ sae, onClose }: { sae: SAE | null; onClose: () => void }) {
  const { config, saeId, baseExportId } = useExportSetup();
  const { estimate, estimateError, configCheck, validation, validating, error } = useExportChecks();
  const { setConfig, validate, start, setBaseExport } = exportActions;
  const [advanced, setAdvanced] = useState(false);
  const [previous, setPrevious] = useState<Export[]>([]);
  useEffect(() => {
    if (saeId) api.listExports(saeId).then((p) => setPrevious(p.items.filter((e) => e.status === "completed")), () => setPrevious([]));
  }, [saeId]);
  const [custom, setCustom] = useState((config.selection.indices ?? []).join(", "));
  const missing = estimate?.missing.length ? estimate.missing.join(", ") : null;
  const mode: SelectionMode = config.selection.mode ?? "all";
  const setSelection = (patch: Partial<FeatureSelection>) => setConfig({ selection: { ...config.selection, ...patch } });
  const pickMode = (m: SelectionMode) => setConfig({ selection: { mode: m } });
  const setCustomIndices = (text: string) => {
    setCustom(text);
    setSelection({ indices: text.split(/[\s,]+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n >= 0) });
  };
  const numberOrNull = (v: string) => (v === "" ? null : Number(v));
  const neuronpedia = config.format !== "saelens";
  return (
    <Modal title="Export to Neuronpedia" onClose={onClose} wide testId="export-dialog"
      footer={
        <>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="button" onClick={() => void validate()} disabled={validating}>{validating ? "Validating…" : "Validate"}</button>
          <button type="button" className="primary" onClick={() => void start()}
            disabled={Boolean(estimate?.problems?.length)} title={estimate?.problems?.join(" ") || undefined}>Export</button>
        </>
      }>
      <p>
        SAE: <strong>{sae?.name ?? "…"}</strong>
        {sae && <span className="muted"> · {(sae.d_sae ?? 0).toLocaleString("en-US")} features · {(sae.n_features_extracted ?? 0).toLocaleString("en-US")} extracted</span>}
      </p>
      <fieldset>
        <legend>Export format</legend>
        {FORMATS.map(([value, label]) => (
          <label key={value} className="radio">
            <input type="radio" name="format" checked={config.format === value} onChange={() => setConfig({ format: value })} />
            {label}
          </label>
        ))}
      </fieldset>
      <fieldset disabled={!neuronpedia}>
        <legend>Feature selection</legend>
        <label className="radio"><input type="radio" name="selection" checked={mode === "all"} onChange={() => pickMode("all")} />
          All features{sae?.d_sae ? ` (${sae.d_sae.toLocaleString("en-US")})` : ""}</label>
        <label className="radio"><input type="radio" name="selection" checked={mode === "labeled"} onChange={() => pickMode("labeled")} />
          Labeled features only</label>
        <label className="radio"><input type="radio" name="selection" checked={mode === "list"} onChange={() => pickMode("list")} />
          Custom selection</label>
        {mode === "list" && (
          <label className="block indent">Feature indices
            <input value={custom} onChange={(e) => setCustomIndices(e.target.value)} placeholder="0, 5, 17" />
          </label>
        )}
        <label className="radio"><input type="radio" name="selection" checked={mode === "range"} onChange={() => pickMode("range")} />
          Index range</label>
        {mode === "range" && (
          <div className="form-row indent">
            <label>From index <input type="number" min={0} value={config.selection.start ?? ""}
              onChange={(e) => setSelection({ start: numberOrNull(e.target.value) })} /></label>
            <label>to (exclusive) <input type="number" min={0} value={config.selection.stop ?? ""}
              onChange={(e) => setSelection({ stop: numberOrNull(e.target.value) })} /></label>
          </div>
        )}
        <label className="radio"><input type="radio" name="selection" checked={mode === "label_text"} onChange={() => pickMode("label_text")} />
          Label or category contains</label>
        {mode === "label_text" && (
          <label className="block indent">Text
            <input value={config.selection.text ?? ""} onChange={(e) => setSelection({ text: e.target.value })} placeholder="e.g. dates" />
          </label>
        )}
        <label className="radio"><input type="radio" name="selection" checked={mode === "max_activation"} onChange={() => pickMode("max_activation")} />
          By max activation</label>
        {mode === "max_activation" && (
          <label className="block indent">Max activation at least
            <input type="number" step="any" value={config.selection.min_max_activation ?? ""}
              onChange={(e) => setSelection({ min_max_activation: numberOrNull(e.target.value) })} />
          </label>
        )}
        <label className="radio"><input type="radio" name="selection" checked={mode === "frequency"} onChange={() => pickMode("frequency")} />
          By activation frequency</label>
        {mode === "frequency" && (
          <div className="form-row indent">
            <label>From <input type="number" step="any" min={0} max={1} value={config.selection.min_frequency ?? ""}
              onChange={(e) => setSelection({ min_frequency: numberOrNull(e.target.value) })} /></label>
            <label>to <input type="number" step="any" min={0} max={1} value={config.selection.max_frequency ?? ""}
              onChange={(e) => setSelection({ max_frequency: numberOrNull(e.target.value) })} /></label>
          </div>
        )}
        <label className="checkbox"><input type="checkbox" checked={config.selection.include_dead ?? true}
          onChange={(e) => setSelection({ include_dead: e.target.checked })} />Include dead features</label>
      </fieldset>
      <fieldset>
        <legend>Names in the archive</legend>
        <p className="muted small">The archive names the model and the dataset by their HuggingFace ids, never by a
          path on this machine: a local model folder or dataset file needs its id here.</p>
        <div className="form-grid">
          <label>Model id
            <input value={config.model_id ?? ""} placeholder={sae?.model_name ?? "e.g. google/gemma-2-2b or gemma-2-2b"}
              onChange={(e) => setConfig({ model_id: e.target.value })} /></label>
          <label>Dataset id
            <input value={config.dataset_id ?? ""} placeholder="e.g. Skylion007/openwebtext"
              onChange={(e) => setConfig({ dataset_id: e.target.value })} /></label>
        </div>
      </fieldset>
      <fieldset disabled={!neuronpedia}>
        <legend>Dashboard data</legend>
        <label className="checkbox"><input type="checkbox" checked disabled />Top activating examples ({config.n_examples} per feature)</label>
        <label className="checkbox"><input type="checkbox" checked disabled />Logit lens data (top {config.logit_k} positive/negative)</label>
        <label className="checkbox"><input type="checkbox" checked disabled />Activation histograms</label>
        <label className="checkbox"><input type="checkbox" checked={config.top_tokens > 0}
          onChange={(e) => setConfig({ top_tokens: e.target.checked ? 20 : 0 })} />Token aggregations</label>
        <label className="checkbox"><input type="checkbox" checked={config.include_explanations}
          onChange={(e) => setConfig({ include_explanations: e.target.checked })} />Feature explanations</label>
        <label className="checkbox"><input type="checkbox" checked={config.interval_examples ?? false}
          onChange={(e) => setConfig({ interval_examples: e.target.checked })} />Interval (quantile-band) examples
          <span className="muted small"> — about doubles the archive</span></label>
        <label className="checkbox"><input type="checkbox" checked={config.saedashboard_batches ?? false}
          onChange={(e) => setConfig({ saedashboard_batches: e.target.checked })} />SAEDashboard batch files
          (<code>neuronpedia/batch-*.json</code>)<span className="muted small"> — a third copy of every example;
          Neuronpedia imports the bulk-import rows, always written</span></label>
        <p className="muted small">Examples, logit lens and histograms are required by Neuronpedia.</p>
        <p className="small">Logit lens of the Neuronpedia data</p>
        {LOGIT_LENSES.map(([value, label, explanation]) => (
          <label key={value} className="radio">
            <input type="radio" name="np_logit_lens" checked={(config.np_logit_lens ?? "neuronpedia") === value}
              onChange={() => setConfig({ np_logit_lens: value })} />
            {label}<span className="muted small"> — {explanation}</span>
          </label>
        ))}
      </fieldset>
      {previous.length > 0 && (
        <fieldset>
          <legend>Incremental export</legend>
          <label className="block">Build on a previous export
            <select value={baseExportId ?? ""} onChange={(e) => setBaseExport(e.target.value || null)} data-testid="base-export">
              <option value="">No — export everything</option>
              {previous.map((e) => (
                <option key={e.id} value={e.id}>
                  {e.finished_at ? new Date(e.finished_at).toLocaleString() : e.id} · {(e.feature_count ?? 0).toLocaleString("en-US")} features
                </option>
              ))}
            </select></label>
          <p className="muted small">Features unchanged since that export (same extraction, data options and explanations)
            are reused, and the result is one complete export of both.</p>
        </fieldset>
      )}
      <fieldset>
        <legend>
          <button type="button" className="link" aria-expanded={advanced} onClick={() => setAdvanced(!advanced)}>
            Advanced options {advanced ? "▲" : "▼"}
          </button>
        </legend>
        {advanced && (
          <div className="form-grid">
            <label>Examples per feature (20–100)
              <input type="number" min={20} max={100} value={config.n_examples} onChange={(e) => setConfig({ n_examples: Number(e.target.value) })} /></label>
            <label>Logit lens K (10–50)
              <input type="number" min={10} max={50} value={config.logit_k} onChange={(e) => setConfig({ logit_k: Number(e.target.value) })} /></label>
            <label>Histogram bins (20–100)
              <input type="number" min={20} max={100} value={config.n_bins} onChange={(e) => setConfig({ n_bins: Number(e.target.value) })} /></label>
            <label>Compression
              <select value={config.compression} onChange={(e) => setConfig({ compression: e.target.value as ExportSettings["compression"] })}>
                <option value="gzip">gzip</option><option value="none">none</option>
              </select></label>
            <label>Source set
              <input value={config.source_set ?? ""} placeholder="e.g. mistudio-res-16k" onChange={(e) => setConfig({ source_set: e.target.value })} /></label>
            <label>HuggingFace repo for the SAELens folder
              <input value={config.hf_repo_id ?? ""} placeholder="you/your-saes" onChange={(e) => setConfig({ hf_repo_id: e.target.value })} /></label>
          </div>
        )}
      </fieldset>
      <p className="estimate" data-testid="export-estimate">
        {estimate
          ? <>Estimated size: ~{formatBytes(estimate.size_bytes)} · Time: ~{formatDuration(estimate.seconds)} · {estimate.n_features.toLocaleString("en-US")} features</>
          : estimateError ? null : "Estimating…"}
      </p>
      <ErrorMessage message={estimateError} />
      {missing && <p className="warning" role="note" data-testid="missing-warning">⚠ Missing data will be computed during export: {missing}</p>}
      {configCheck && (
        <p className={configCheck.ok ? "notice" : "error"} role="status" data-testid="config-check">
          {configCheck.ok ? "✓ " : "✗ "}{configCheck.message}
        </p>
      )}
      {estimate?.problems?.map((p) => <p key={p} className="error" role="alert" data-testid="export-problem">✗ {p}</p>)}
      {estimate?.notes?.map((n) => <p key={n} className="muted small">{n}</p>)}
      {validation && <ValidationReportView report={validation} title="Latest export archive" />}
      <ErrorMessage message={error} testId="export-error" />
    </Modal>
  );
}
