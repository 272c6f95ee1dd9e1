/** Export complete: summary, files, download, the HF upload command, and the Neuronpedia upload steps. */
import { useState } from "react";
import { api } from "../api/client";
import type { SAE } from "../api/types";
import { formatBytes, formatDuration, secondsSince } from "../lib/format";
import { useExportStore } from "../stores/exportStore";
import { useJobsStore } from "../stores/jobsStore";
import { Modal } from "./Modal";

export const NEURONPEDIA_UPLOAD_URL = "https://docs.neuronpedia.org/upload-saes";

const FORMAT_NAMES: Record<string, string> = {
  neuronpedia: "Neuronpedia JSON", "neuronpedia+saelens": "Neuronpedia JSON + SAELens", saelens: "SAELens",
};

/** The `hf upload` command for an export archive (the result's own command when the server gives one). */
export function hfUploadCommand(result: Record<string, unknown>, saeName: string): string {
  if (typeof result.hf_upload_command === "string") return result.hf_upload_command;
  const repo = `your-username/${saeName.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "") || "sae"}`;
  const archive = typeof result.archive_name === "string" ? result.archive_name : "export.zip";
  return `hf upload ${repo} ./${archive.replace(/\.zip$/, "")} . --repo-type model`;
}

export function ExportComplete({ sae }: { sae: SAE | null }) {
  const { jobId, saeId, close } = useExportStore();
  const job = useJobsStore((s) => (jobId ? s.jobs[jobId] : undefined));
  const [copied, setCopied] = useState<string | null>(null);
  const [showInstructions, setShowInstructions] = useState(false);
  const result = (job?.result ?? {}) as Record<string, unknown>;
  const files = Array.isArray(result.files) ? (result.files as string[]) : [];
  const command = hfUploadCommand(result, sae?.name ?? "sae");
  const instructions = typeof result.instructions === "string" ? result.instructions : null;
  const elapsed = job ? secondsSince(job.started_at ?? job.created_at, job.finished_at) : null;
  const format = String(result.format ?? job?.params?.format ?? (job?.params?.config as Record<string, unknown> | undefined)?.format ?? "");

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
        <div><dt>Features exported</dt><dd>{typeof result.n_features === "number" ? result.n_features.toLocaleString("en-US") : "—"}</dd></div>
        <div><dt>Archive size</dt><dd>{formatBytes(result.size_bytes as number | undefined)}</dd></div>
        <div><dt>Export time</dt><dd>{formatDuration(elapsed)}</dd></div>
        <div><dt>Format</dt><dd>{FORMAT_NAMES[format] ?? (format || "—")}</dd></div>
      </dl>
      {files.length > 0 && (
        <>
          <h3>Files included</h3>
          <ul className="mono file-list" data-testid="export-files">{files.slice(0, 30).map((f) => <li key={f}>{f}</li>)}
            {files.length > 30 && <li>… and {files.length - 30} more</li>}</ul>
        </>
      )}
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
        <button type="button" onClick={copy}>Copy HuggingFace upload command</button>
        <a className="button" href={NEURONPEDIA_UPLOAD_URL} target="_blank" rel="noreferrer">Open Neuronpedia upload form</a>
        <button type="button" aria-expanded={showInstructions} onClick={() => setShowInstructions(!showInstructions)}>View upload instructions</button>
      </div>
      {copied && <p className="notice" role="status">{copied}</p>}
      <pre className="command" data-testid="hf-command">{command}</pre>
      {showInstructions && (
        <div className="instructions" data-testid="upload-instructions">
          {instructions ? <pre>{instructions}</pre> : (
            <ol>
              <li>Unzip the archive; it holds <code>metadata.json</code>, one JSON file per feature and the SAELens weights.</li>
              <li>Upload the SAELens folder to a HuggingFace model repository with the command above.</li>
              <li>Open the Neuronpedia upload form, give the HuggingFace repository and the <code>neuronpedia_id</code> from
                <code> metadata.json</code>, and attach or link the feature JSON files.</li>
              <li>The Neuronpedia team imports the dashboards; check them at <code>neuronpedia.org/&lt;model&gt;/&lt;source&gt;</code>.</li>
            </ol>
          )}
        </div>
      )}
    </Modal>
  );
}
