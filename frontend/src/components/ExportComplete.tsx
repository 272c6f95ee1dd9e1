/** Export complete: summary, files, download, the HF upload command, and the Neuronpedia upload steps. */
import { useState } from "react";
import { api } from "../api/client";
import type { SAE } from "../api/types";
import { formatBytes, formatDuration, secondsSince } from "../lib/format";
import { exportActions, useExportChecks, useExportRun, useExportSetup } from "../stores/exportStore";
import { useJob } from "../stores/jobsStore";
import { ErrorMessage } from "./ErrorMessage";
import { Modal } from "./Modal";
import { ValidationReportView } from "./ValidationReportView";

export const NEURONPEDIA_UPLOAD_URL = "https://docs.neuronpedia.org/upload-saes";

const FORMAT_NAMES: Record<string, string> = {
  neuronpedia: "Neuronpedia JSON", both: "Neuronpedia JSON + SAELens", saelens: "SAELens",
};

/** The `hf upload` command for an export archive (the result's own command when the server gives one). */
export function hfUploadCommand(hfRepoId: string | null | undefined, saeName: string): string {
  const repo = hfRepoId || `your-username/${saeName.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "") || "sae"}`;
  return `unzip mistudio-export.zip -d mistudio-export && hf upload ${repo} mistudio-export/saelens . --repo-type model`;
}

/** What an archive of `format` holds (README.md in the archive lists every file). */
export function archiveContents(format: string, explanations: boolean): string[] {
  const files = ["metadata.json", "README.md (upload instructions)", "SHA256SUMS"];
  if (format !== "saelens") {
    files.push("neuronpedia/ (feature batches, activations, explanations)");
    if (explanations) files.push("explanations/explanations.json");
  }
  if (format !== "neuronpedia") files.push("saelens/cfg.json", "saelens/sae_weights.safetensors", "saelens/pretrained_saes.yaml entry");
  return files;
}

export function ExportComplete({ sae }: { sae: SAE | null }) {
  const { saeId } = useExportSetup();
  const { jobId } = useExportRun();
  const { validating, validation, error } = useExportChecks();
  const { close, validate } = exportActions;
  const job = useJob(jobId);
  const [copied, setCopied] = useState<string | null>(null);
  const [showInstructions, setShowInstructions] = useState(false);
  const result = job?.result ?? {};
  const config = (job?.params?.config ?? {}) as Record<string, unknown>;
  const format = String(config.format ?? "both");
  const files = archiveContents(format, config.include_explanations !== false);
  const command = hfUploadCommand(config.hf_repo_id as string | undefined, sae?.name ?? "sae");
  const seconds = typeof result.seconds === "number" ? result.seconds : secondsSince(job?.started_at, job?.finished_at);
  const exportId = typeof result.export_id === "string" ? result.export_id : undefined;

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(command);
      setCopied("Copied to the clipboard.");
    } catch {
      setCopied("Copy failed: select the command below and copy it.");
    }
  };

  return (
    <Modal title="✓ Export complete" onClose={close} wide testId="export-complete"
      footer={<button type="button" onClick={close}>Close</button>}>
      <p>SAE: <strong>{sae?.name ?? "…"}</strong></p>
      <h3>Export summary</h3>
      <dl className="kv summary" data-testid="export-summary">
        <div><dt>Features exported</dt><dd>{typeof result.feature_count === "number" ? result.feature_count.toLocaleString("en-US") : "—"}</dd></div>
        {typeof result.n_skipped === "number" && result.n_skipped > 0 && <div><dt>Skipped (dead)</dt><dd>{result.n_skipped.toLocaleString("en-US")}</dd></div>}
        <div><dt>Archive size</dt><dd>{formatBytes(result.file_size_bytes as number | undefined)}</dd></div>
        <div><dt>Export time</dt><dd>{formatDuration(seconds)}</dd></div>
        <div><dt>Format</dt><dd>{FORMAT_NAMES[format] ?? (format || "—")}</dd></div>
      </dl>
      <h3>Files included</h3>
      <ul className="mono file-list" data-testid="export-files">{files.map((f) => <li key={f}>{f}</li>)}</ul>
      <h3>Next steps</h3>
      <ol>
        <li>Download the export archive.</li>
        <li>Fill out the Neuronpedia upload form.</li>
        <li>Coordinate with the Neuronpedia team for the import.</li>
      </ol>
      <div className="actions wrap">
        {saeId && jobId && (
          <a className="button primary" href={api.exportDownloadUrl(saeId, jobId)} download data-testid="download-archive">Download archive</a>
        )}
        <button type="button" onClick={() => void validate(exportId)} disabled={validating}>
          {validating ? "Validating…" : "Validate archive"}
        </button>
        <button type="button" onClick={copy}>Copy HuggingFace upload command</button>
        <a className="button" href={NEURONPEDIA_UPLOAD_URL} target="_blank" rel="noreferrer">Open Neuronpedia upload form</a>
        <button type="button" aria-expanded={showInstructions} onClick={() => setShowInstructions(!showInstructions)}>View upload instructions</button>
      </div>
      {validation && <ValidationReportView report={validation} title="Export archive" />}
      <ErrorMessage message={error} />
      {copied && <p className="notice" role="status">{copied}</p>}
      <pre className="command" data-testid="hf-command">{command}</pre>
      {showInstructions && (
        <div className="instructions" data-testid="upload-instructions">
          <ol>
              <li>Unzip the archive; its <code>README.md</code> lists every file and the exact upload steps for this export.</li>
              <li>Upload the SAELens folder to a HuggingFace model repository with the command above.</li>
              <li>Open the Neuronpedia upload form, give the HuggingFace repository and the <code>neuronpedia_id</code> from
                <code> metadata.json</code>, and attach or link the feature JSON files.</li>
              <li>The Neuronpedia team imports the dashboards; check them at <code>neuronpedia.org/&lt;model&gt;/&lt;source&gt;</code>.</li>
          </ol>
        </div>
      )}
    </Modal>
  );
}
