/** Export progress: overall and current-stage bars, the stage table, elapsed/remaining, cancel or background. */
import { useEffect, useState } from "react";
import type { JobStage, SAE } from "../api/types";
import { formatDuration, secondsSince } from "../lib/format";
import { exportActions, useExportRun } from "../stores/exportStore";
import { jobActions, useJob } from "../stores/jobsStore";
import { ErrorMessage } from "./ErrorMessage";
import { Modal } from "./Modal";
import { ProgressBar } from "./ProgressBar";

const ICONS: Record<string, string> = { completed: "✓", running: "●", pending: "○", failed: "✗", cancelled: "✗" };
const STATUS_TEXT: Record<string, string> = { completed: "Complete", running: "In progress", pending: "Pending",
  failed: "Failed", cancelled: "Cancelled" };

function useNow(ms: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

function stageTime(stage: JobStage): string {
  if (stage.elapsed_s !== undefined && stage.elapsed_s !== null) return formatDuration(stage.elapsed_s);
  if (stage.status === "running" && stage.started_at) return formatDuration(secondsSince(stage.started_at));
  return "—";
}

export function ExportProgress({ sae }: { sae: SAE | null }) {
  const { jobId } = useExportRun();
  const { close, setPhase } = exportActions;
  const { watch, cancel } = jobActions;
  const job = useJob(jobId);
  const [cancelError, setCancelError] = useState<string | null>(null);
  useNow(1000);

  useEffect(() => {
    if (jobId) watch(jobId, (j) => { if (j.status === "completed") setPhase("complete"); });
  }, [jobId, watch, setPhase]);

  const current = job?.stages.find((s) => s.status === "running");
  const elapsed = job ? secondsSince(job.started_at ?? job.created_at, job.finished_at) : null;
  const doCancel = async () => {
    setCancelError(null);
    try {
      if (jobId) await cancel(jobId);
    } catch (e) {
      setCancelError((e as Error).message);
    }
  };
  const done = job && ["failed", "cancelled"].includes(job.status);
  return (
    <Modal title="Exporting to Neuronpedia" onClose={close} wide testId="export-progress"
      footer={done ? <button type="button" onClick={close}>Close</button> : (
        <>
          <button type="button" className="danger" onClick={doCancel}>Cancel export</button>
          <button type="button" className="primary" onClick={close}>Run in background</button>
        </>
      )}>
      <p>SAE: <strong>{sae?.name ?? "…"}</strong></p>
      <h3>Overall progress</h3>
      <ProgressBar value={job?.progress} label="Overall export progress" />
      <h3>Current stage: <span className="stage-name">{current?.name ?? (job?.status === "pending" ? "queued" : job?.current_stage ?? "—")}</span></h3>
      <ProgressBar value={current?.progress ?? (job?.status === "completed" ? 1 : 0)} label="Current stage progress" />
      <p className="muted progress-message">{job?.message ?? " "}</p>
      <table className="stage-table" data-testid="stage-table">
        <thead><tr><th>Stage</th><th>Status</th><th className="num">Time</th></tr></thead>
        <tbody>
          {(job?.stages ?? []).map((st) => (
            <tr key={st.name} className={`stage-${st.status}`} data-testid="stage-row" data-status={st.status}>
              <td><span aria-hidden="true" className="stage-icon">{ICONS[st.status] ?? "○"}</span> {st.name}</td>
              <td>{STATUS_TEXT[st.status] ?? st.status}</td>
              <td className="num">{stageTime(st)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="timing">
        Elapsed: <span className="mono">{formatDuration(elapsed)}</span> · Remaining:{" "}
        <span className="mono">{job?.eta_seconds !== null && job?.eta_seconds !== undefined ? `~${formatDuration(job.eta_seconds)}` : "—"}</span>
      </p>
      {job?.status === "failed" && <ErrorMessage message={job.error_message} testId="export-failed" />}
      {job?.status === "cancelled" && <p className="warning" role="status">Export cancelled.</p>}
      <ErrorMessage message={cancelError} />
    </Modal>
  );
}
