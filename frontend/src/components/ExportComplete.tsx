/** Export complete: summary, files, download, the HF upload command, and how the export gets onto Neuronpedia. */
import { useState } from "react";
import { api } from "../api/client";
import type { SAE } from "../api/types";
import { formatBytes, formatDuration, secondsSince } from "../lib/format";
import { exportActions, useExportChecks, useExportRun, useExportSetup } from "../stores/exportStore";
import { useJob } from "../stores/jobsStore";
import { ErrorMessage } from "./ErrorMessage";
import { Modal } from "./Modal";
import { PublishToHF } from "./PublishToHF";
import { ValidationReportView } from "./ValidationReportView";

export const NEURONPEDIA_UPLOAD_URL = "https://docs.neuronpedia.org/upload-saes";

const FORMAT_NAMES: Record<string, string> = {
  neuronpedia: "Neuronpedia JSON", both: "Neuronpedia JSON + SAELens", saelens: "SAELens",
};

/** The file name the download gets (the server's Content-Disposition). */
export function archiveFileName(saeId: string, jobId: string): string {
  return `mistudio-export-${saeId}-${jobId}.zip`;
}

/** The commands that upload the archive's `saelens/` folder into the sub-folder its `pretrained_saes.yaml` names
 * (`saeFolder`), where `SAE.from_pretrained(repo, saeFolder)` looks for it. */
export function hfUploadCommand(hfRepoId: string | null | undefined, saeName: string, archive: string,
  saeFolder: string): string {
  const repo = hfRepoId || `your-username/${saeName.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "") || "sae"}`;
  const folder = archive.replace(/\.zip$/, "");
  return `unzip ${archive} -d ${folder} && hf upload ${repo} ${folder}/saelens ${saeFolder} --repo-type model`;
}

/** The Neuronpedia bulk-import folder of an export (`neuronpedia/exports/{model}/{source}`). */
export function bulkImportFolder(neuronpedia: Record<string, unknown> | undefined): string | null {
  if (!neuronpedia?.model_id || !neuronpedia?.source_id) return null;
  return `neuronpedia/exports/${String(neuronpedia.model_id)}/${String(neuronpedia.source_id)}`;
}

/** What Neuronpedia's public upload API has no field for (it only reaches Neuronpedia through a bulk import). */
export const NOT_TAKEN_BY_API = "activation and logit histograms, neuron alignment, correlated neurons and features, "
  + "the decoder cosine top-k, explanation methods and scores";

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
  const archive = saeId && jobId ? archiveFileName(saeId, jobId) : "mistudio-export.zip";
  const saelens = (result.saelens ?? null) as { release?: string; sae_id?: string } | null;
  const saeFolder = saelens?.sae_id ?? sae?.hook_name ?? "sae";
  const command = hfUploadCommand(config.hf_repo_id as string | undefined, sae?.name ?? "sae", archive, saeFolder);
  const bulkFolder = bulkImportFolder(result.neuronpedia as Record<string, unknown> | undefined);
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
      <h3>Getting it onto Neuronpedia</h3>
      <ol data-testid="neuronpedia-steps">
        <li>Download the archive (<code>{archive}</code>); its <code>README.md</code> has the exact values for this export.</li>
        {format !== "saelens" && <>
          <li><strong>Bulk import</strong> (everything Neuronpedia shows): send the folder
            <code> {bulkFolder ?? "neuronpedia/exports/…"}/</code> to the Neuronpedia team, who import it from their
            bucket <code>s3://neuronpedia-datasets/v1/</code>.</li>
          <li><strong>Or the public API</strong> with your neuronpedia.org API key:
            <code> mistudio export upload-neuronpedia {archive} --api-key $NEURONPEDIA_API_KEY</code>. The API does
            not take the {NOT_TAKEN_BY_API}: those panels stay empty until a bulk import.</li>
        </>}
        {format !== "neuronpedia" && <li>Publish the SAELens folder to HuggingFace (button below, or the command) so
          Neuronpedia and SAELens can load the SAE.</li>}
      </ol>
      <div className="actions wrap">
        {saeId && jobId && (
          <a className="button primary" href={api.exportDownloadUrl(saeId, jobId)} download data-testid="download-archive">Download archive</a>
        )}
        <button type="button" onClick={() => void validate(exportId)} disabled={validating}>
          {validating ? "Validating…" : "Validate archive"}
        </button>
        {format !== "neuronpedia" && <button type="button" onClick={copy}>Copy HuggingFace upload command</button>}
        <a className="button" href={NEURONPEDIA_UPLOAD_URL} target="_blank" rel="noreferrer">Open Neuronpedia upload form</a>
        <button type="button" aria-expanded={showInstructions} onClick={() => setShowInstructions(!showInstructions)}>View upload instructions</button>
      </div>
      {saeId && <PublishToHF saeId={saeId} defaultRepo={config.hf_repo_id as string | undefined} />}
      {validation && <ValidationReportView report={validation} title="Export archive" />}
      <ErrorMessage message={error} />
      {copied && <p className="notice" role="status">{copied}</p>}
      {format !== "neuronpedia" && <pre className="command" data-testid="hf-command">{command}</pre>}
      {showInstructions && (
        <div className="instructions" data-testid="upload-instructions">
          <ol>
              <li>Check the archive: <code>mistudio export validate {archive}</code>.</li>
              <li>Upload the SAELens folder with the command above: it lands in <code>{saeFolder}/</code> of the
                repository, the sub-folder <code>saelens/pretrained_saes.yaml</code> names.</li>
              <li>Bulk import: the Neuronpedia team copies <code>{bulkFolder ?? "neuronpedia/exports/…"}/</code> to
                <code> s3://neuronpedia-datasets/v1/</code> and imports it (on your own Neuronpedia instance:
                <code> /api/admin/import</code> as an admin).</li>
              <li>Or upload through the API with <code>mistudio export upload-neuronpedia</code> (resumable; not sent:
                {" "}{NOT_TAKEN_BY_API}).</li>
              <li>Check the dashboards at <code>neuronpedia.org/{String((result.neuronpedia as Record<string, unknown> | undefined)?.neuronpedia_id ?? "<model>/<source>")}</code>.</li>
          </ol>
        </div>
      )}
    </Modal>
  );
}
