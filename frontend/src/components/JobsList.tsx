/** Running and past jobs (read from the server, so the list survives a reload), with their controls. */
import { useEffect, useState } from "react";
import { api } from "../api/client";
import { isFinished } from "../api/watchJob";
import { describeJobMessage, formatDuration, secondsSince } from "../lib/format";
import { navigate } from "../lib/router";
import { exportActions } from "../stores/exportStore";
import { jobActions, useJob, useJobIds, useJobsError } from "../stores/jobsStore";
import { ErrorMessage } from "./ErrorMessage";
import { ProgressBar } from "./ProgressBar";

const TYPE_NAMES: Record<string, string> = { sae_download: "Download", extraction: "Extraction", export: "Export",
  training: "Training" };

/** One job's row; re-renders on that job's events only. */
function JobRow({ jobId }: { jobId: string }) {
  const job = useJob(jobId);
  const [error, setError] = useState<string | null>(null);
  const act = (fn: (id: string) => Promise<void>) => async () => {
    setError(null);
    try {
      await fn(jobId);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  if (!job) return null;
  const { cancel, pause, resume } = jobActions;
  const active = !isFinished(job);
  const openExport = () => {
    if (!job.sae_id) return;
    exportActions.showJob(job.sae_id, job.id);
    if (job.status === "completed") exportActions.setPhase("complete");
  };
  return (
    <tr data-testid="job-row" data-status={job.status} data-type={job.type}>
      <td>{TYPE_NAMES[job.type] ?? job.type}</td>
      <td>
        {job.sae_id ? (
          <a href={`/saes/${job.sae_id}`} onClick={(e) => { e.preventDefault(); navigate(`/saes/${job.sae_id}`); }}
            className="mono">{job.sae_id.slice(0, 8)}</a>
        ) : "—"}
      </td>
      <td><span className={`status status-${job.status}`}>{job.status}</span></td>
      <td className="progress-cell">
        <ProgressBar value={job.progress} label={`${job.type} ${job.id} progress`} small />
        <span className="muted progress-message">
          {job.status === "failed" || job.status === "interrupted" ? job.error_message : `${job.current_stage ?? ""}${job.message ? ` · ${describeJobMessage(job.message)}` : ""}`}
        </span>
        <ErrorMessage message={error} />
      </td>
      <td className="num">{formatDuration(secondsSince(job.started_at ?? job.created_at, job.finished_at))}</td>
      <td className="muted">{job.created_at ? new Date(job.created_at).toLocaleString() : "—"}</td>
      <td><div className="row-actions">
        {job.type === "export" && job.sae_id && <button type="button" onClick={openExport}>Open</button>}
        {job.type === "export" && job.status === "completed" && job.sae_id && (
          <a className="button" href={api.exportDownloadUrl(job.sae_id, job.id)} download>Download</a>
        )}
        {job.status === "running" && <button type="button" onClick={act(pause)}>Pause</button>}
        {(job.status === "paused" || job.status === "interrupted" || (job.status === "failed" && job.resumable)) && <button type="button" onClick={act(resume)}>Resume</button>}
        {active && <button type="button" className="danger" onClick={act(cancel)}>Cancel</button>}
      </div></td>
    </tr>
  );
}

export function JobsList() {
  const { active: running, finished: past } = useJobIds();
  const error = useJobsError();
  useEffect(() => {
    void jobActions.refresh();
    const t = setInterval(() => void jobActions.refresh(), 5000);
    return () => clearInterval(t);
  }, []);
  const table = (rows: string[], label: string) => (
    <div className="table-wrap">
      <table className="jobs-table" aria-label={label}>
        <thead><tr><th>Type</th><th>SAE</th><th>Status</th><th>Progress</th><th className="num">Time</th><th>Created</th><th>Actions</th></tr></thead>
        <tbody>{rows.map((id) => <JobRow key={id} jobId={id} />)}</tbody>
      </table>
    </div>
  );
  return (
    <section className="panel" aria-labelledby="jobs-title" data-testid="jobs-list">
      <header className="panel-header"><h1 id="jobs-title">Jobs</h1></header>
      <ErrorMessage message={error} />
      <h2>Running ({running.length})</h2>
      {running.length ? table(running, "Running jobs") : <p className="muted">No job is running.</p>}
      <h2>Past ({past.length})</h2>
      {past.length ? table(past, "Past jobs") : <p className="muted">No finished jobs yet.</p>}
    </section>
  );
}
