/** Start a dashboard extraction for an SAE (model, dataset, tokens, context) and follow it live. */
import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { SAE } from "../api/types";
import { isFinished } from "../api/watchJob";
import { formatDuration } from "../lib/format";
import { jobActions, useActiveJobId, useJob } from "../stores/jobsStore";
import { ErrorMessage } from "./ErrorMessage";
import { ProgressBar } from "./ProgressBar";

interface Props {
  sae: SAE;
  onFinished: () => void;
}

export function ExtractionLauncher({ sae, onFinished }: Props) {
  const [model, setModel] = useState(sae.model_name ?? "");
  const [dataset, setDataset] = useState("builtin:corpus");
  const [nTokens, setNTokens] = useState(20000);
  const [context, setContext] = useState(Number(sae.metadata?.context_size) || 128);
  const [error, setError] = useState<string | null>(null);
  const [jobId, setJobId] = useState<string | null>(null);
  const job = useJob(jobId);
  const { watch, cancel } = jobActions;

  // Pick up an extraction already running for this SAE (e.g. after a reload).
  const runningId = useActiveJobId("extraction", sae.id);
  useEffect(() => {
    void jobActions.refresh();
  }, []);
  useEffect(() => {
    if (jobId || !runningId) return;
    setJobId(runningId);
    watch(runningId, () => onFinished());
  }, [runningId, jobId, watch, onFinished]);

  const start = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const started = await api.extract(sae.id, { model: model.trim(), dataset: dataset.trim(), n_tokens: nTokens,
        context_size: context });
      // A finished identical extraction is reused: nothing is queued and its dashboards are ready.
      if (started.job_id === null) {
        onFinished();
        return;
      }
      const jobId = started.job_id;
      setJobId(jobId);
      watch(jobId, () => onFinished());
    } catch (err) {
      setError((err as Error).message);
    }
  };

  const running = job && !isFinished(job);
  return (
    <section className="card" id="extract" aria-labelledby="extract-title" data-testid="extraction-launcher">
      <h2 id="extract-title">Extract feature dashboards</h2>
      <p className="muted">One pass over the dataset computes every feature's examples, histograms, logit lens and top tokens.</p>
      <form className="form-grid" onSubmit={start}>
        <label>
          Model
          <input value={model} onChange={(e) => setModel(e.target.value)} required placeholder="HF id or local folder"
            spellCheck={false} />
        </label>
        <label>
          Dataset
          <input value={dataset} onChange={(e) => setDataset(e.target.value)} required spellCheck={false}
            placeholder="builtin:corpus, a file/folder, or an HF dataset id" />
        </label>
        <label>
          Tokens
          <input type="number" min={1} step={1} value={nTokens} onChange={(e) => setNTokens(Number(e.target.value))} />
        </label>
        <label>
          Context size
          <input type="number" min={2} step={1} value={context} onChange={(e) => setContext(Number(e.target.value))} />
        </label>
        <div className="form-actions">
          <button type="submit" className="primary" disabled={Boolean(running)}>{running ? "Extracting…" : "Start extraction"}</button>
        </div>
      </form>
      <ErrorMessage message={error} testId="extract-error" />
      {job && (
        <div className="job-progress" data-testid="extraction-progress">
          <ProgressBar value={job.progress} label="Extraction progress" />
          <p className="muted progress-message">
            {job.status === "completed" ? "Extraction complete." : job.status === "failed" ? "Extraction failed." :
              `${job.status}${job.current_stage ? ` · ${job.current_stage}` : ""}${job.message ? ` · ${job.message}` : ""}${job.eta_seconds !== null ? ` · ~${formatDuration(job.eta_seconds)} left` : ""}`}
          </p>
          {job.status === "failed" && <ErrorMessage message={job.error_message} />}
          {running && <button type="button" onClick={() => void cancel(job.id)}>Cancel extraction</button>}
        </div>
      )}
    </section>
  );
}
