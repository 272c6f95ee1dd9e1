/** The Neuronpedia export dialog: configuration, estimate, missing-data warning, validation; then progress/complete. */
import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { ExportConfig, SAE, ValidationIssue, ValidationReport } from "../api/types";
import { formatBytes, formatDuration } from "../lib/format";
import { useExportStore } from "../stores/exportStore";
import { ErrorMessage } from "./ErrorMessage";
import { ExportComplete } from "./ExportComplete";
import { ExportProgress } from "./ExportProgress";
import { Modal } from "./Modal";

const FORMATS: [ExportConfig["format"], string][] = [
  ["neuronpedia", "Neuronpedia JSON only"],
  ["neuronpedia+saelens", "Neuronpedia JSON + SAELens (recommended)"],
  ["saelens", "SAELens format only"],
];

const DATA_OPTIONS: [keyof ExportConfig, string][] = [
  ["include_examples", "Top activating examples"],
  ["include_logits", "Logit lens data (top positive/negative)"],
  ["include_histograms", "Activation histograms"],
  ["include_top_tokens", "Token aggregations"],
  ["include_explanations", "Feature explanations"],
];

/** The dialog for whichever export phase the store is in. */
export function ExportToNeuronpedia() {
  const { phase, saeId, close } = useExportStore();
  const [sae, setSAE] = useState<SAE | null>(null);
  useEffect(() => {
    if (saeId) api.getSAE(saeId).then(setSAE, () => setSAE(null));
  }, [saeId]);
  if (phase === "closed" || !saeId) return null;
  if (phase === "progress") return <ExportProgress sae={sae} />;
  if (phase === "complete") return <ExportComplete sae={sae} />;
  return <ExportConfigDialog sae={sae} onClose={close} />;
}

function issueText(issue: ValidationIssue | string): string {
  if (typeof issue === "string") return issue;
  const fix = issue.suggestion ?? issue.fix;
  return `${issue.message}${fix ? ` — ${fix}` : ""}`;
}

function ValidationView({ report }: { report: ValidationReport }) {
  const errors = report.errors ?? (report.issues ?? []).filter((i) => typeof i !== "string" && (i.level ?? i.severity) === "error");
  const warnings = report.warnings ?? (report.issues ?? []).filter((i) => typeof i === "string" || (i.level ?? i.severity) !== "error");
  const ok = report.valid ?? report.ok ?? errors.length === 0;
  return (
    <div className={`validation ${ok ? "ok" : "bad"}`} data-testid="validation-report" role="status">
      <strong>{ok ? "✓ Validation passed" : "✗ Validation found problems"}</strong>
      {errors.length > 0 && <ul className="errors">{errors.map((e, i) => <li key={i}>{issueText(e)}</li>)}</ul>}
      {warnings.length > 0 && <ul className="warnings">{warnings.map((w, i) => <li key={i}>{issueText(w)}</li>)}</ul>}
    </div>
  );
}

function missingSummary(missing: unknown): string | null {
  if (!missing) return null;
  if (Array.isArray(missing)) return missing.length ? missing.join(", ") : null;
  const entries = Object.entries(missing as Record<string, unknown>).filter(([, v]) => v);
  return entries.length ? entries.map(([k, v]) => (typeof v === "number" ? `${k}: ${v.toLocaleString("en-US")} features` : k)).join(" · ") : null;
}

function ExportConfigDialog({ sae, onClose }: { sae: SAE | null; onClose: () => void }) {
  const { config, setConfig, estimate, estimateError, validation, validating, validate, start, error } = useExportStore();
  const [advanced, setAdvanced] = useState(false);
  const [custom, setCustom] = useState((config.feature_indices ?? []).join(", "));
  const missing = missingSummary(estimate?.missing);
  const setCustomIndices = (text: string) => {
    setCustom(text);
    const indices = text.split(/[\s,]+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n >= 0);
    setConfig({ feature_indices: indices });
  };
  return (
    <Modal title="Export to Neuronpedia" onClose={onClose} wide testId="export-dialog"
      footer={
        <>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="button" onClick={() => void validate()} disabled={validating}>{validating ? "Validating…" : "Validate"}</button>
          <button type="button" className="primary" onClick={() => void start()}>Export</button>
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
      <fieldset>
        <legend>Feature selection</legend>
        <label className="radio"><input type="radio" name="selection" checked={config.feature_selection === "all"}
          onChange={() => setConfig({ feature_selection: "all" })} />All features</label>
        <label className="radio"><input type="radio" name="selection" checked={config.feature_selection === "labeled"}
          onChange={() => setConfig({ feature_selection: "labeled" })} />Labeled features only</label>
        <label className="radio"><input type="radio" name="selection" checked={config.feature_selection === "custom"}
          onChange={() => setConfig({ feature_selection: "custom" })} />Custom selection</label>
        {config.feature_selection === "custom" && (
          <label className="block indent">Feature indices
            <input value={custom} onChange={(e) => setCustomIndices(e.target.value)} placeholder="0, 5, 17" />
          </label>
        )}
        <label className="radio"><input type="radio" name="selection" checked={config.feature_selection === "frequency"}
          onChange={() => setConfig({ feature_selection: "frequency" })} />By activation frequency</label>
        {config.feature_selection === "frequency" && (
          <div className="form-row indent">
            <label>From <input type="number" step="any" min={0} max={1} value={config.min_frequency ?? ""}
              onChange={(e) => setConfig({ min_frequency: e.target.value === "" ? null : Number(e.target.value) })} /></label>
            <label>to <input type="number" step="any" min={0} max={1} value={config.max_frequency ?? ""}
              onChange={(e) => setConfig({ max_frequency: e.target.value === "" ? null : Number(e.target.value) })} /></label>
          </div>
        )}
      </fieldset>
      <fieldset disabled={config.format === "saelens"}>
        <legend>Dashboard data</legend>
        {DATA_OPTIONS.map(([key, label]) => (
          <label key={key} className="checkbox">
            <input type="checkbox" checked={Boolean(config[key])} onChange={(e) => setConfig({ [key]: e.target.checked })} />
            {label}
          </label>
        ))}
      </fieldset>
      <fieldset>
        <legend>
          <button type="button" className="link" aria-expanded={advanced} onClick={() => setAdvanced(!advanced)}>
            Advanced options {advanced ? "▲" : "▼"}
          </button>
        </legend>
        {advanced && (
          <div className="form-grid">
            <label>Examples per feature
              <input type="number" min={1} max={200} value={config.n_examples} onChange={(e) => setConfig({ n_examples: Number(e.target.value) })} /></label>
            <label>Logit lens K
              <input type="number" min={1} max={200} value={config.logit_k} onChange={(e) => setConfig({ logit_k: Number(e.target.value) })} /></label>
            <label>Histogram bins
              <input type="number" min={2} max={500} value={config.n_bins} onChange={(e) => setConfig({ n_bins: Number(e.target.value) })} /></label>
            <label>Compression
              <select value={config.compression} onChange={(e) => setConfig({ compression: e.target.value as ExportConfig["compression"] })}>
                <option value="gzip">gzip</option><option value="none">none</option>
              </select></label>
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
      {validation && <ValidationView report={validation} />}
      <ErrorMessage message={error} testId="export-error" />
    </Modal>
  );
}
