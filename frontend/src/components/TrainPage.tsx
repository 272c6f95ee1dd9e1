/**
 * The Train page: train one SAE or transcoder, or several from one forward pass (one row each), on a model's
 * activations; watch the run live (tokens/s, ETA, L0, explained variance, dead fraction and the curves), pause,
 * resume or cancel it; the list of training runs, each linking to the SAE it produced.
 */
import { useEffect, useState } from "react";
import type { Job, Training } from "../api/types";
import { isFinished } from "../api/watchJob";
import { formatDuration, formatNumber, formatPercent } from "../lib/format";
import { navigate } from "../lib/router";
import { jobActions, useJob } from "../stores/jobsStore";
import {
  ARCHITECTURES,
  liveMetrics,
  trainingActions,
  useCurves,
  useRunForm,
  useSAECount,
  useSAEForm,
  useStartError,
  useStarting,
  useStartNotice,
  useTraining,
  useTrainings,
  useTrainingsError,
  useTrainingStore,
  useWatchedRun,
  USES_K,
  type Architecture,
} from "../stores/trainingStore";
import { ErrorMessage } from "./ErrorMessage";
import { ProgressBar } from "./ProgressBar";
import { TrainingCurves } from "./TrainingCurves";

const ARCHITECTURE_NAMES: Record<Architecture, string> = {
  standard: "Standard (L1)",
  topk: "TopK",
  batchtopk: "BatchTopK",
  jumprelu: "JumpReLU",
  matryoshka_batchtopk: "Matryoshka BatchTopK",
};

function saePath(saeId: string): string {
  return `/saes/${encodeURIComponent(saeId)}`;
}

function SAELink({ saeId, children }: { saeId: string; children: React.ReactNode }) {
  return <a href={saePath(saeId)} onClick={(e) => { e.preventDefault(); navigate(saePath(saeId)); }}>{children}</a>;
}

function RunFields() {
  const run = useRunForm();
  const set = trainingActions.setRun;
  return (
    <fieldset className="train-run">
      <legend>Model and data</legend>
      <div className="form-row">
        <label className="grow">Model <input value={run.model} onChange={(e) => set({ model: e.target.value })}
          placeholder="HF model id or local folder, e.g. gpt2" data-testid="train-model" /></label>
        <label className="grow">Dataset <input value={run.dataset} onChange={(e) => set({ dataset: e.target.value })}
          placeholder="builtin:corpus, a file/folder or an HF dataset id" data-testid="train-dataset" /></label>
      </div>
      <div className="form-row">
        <label>Training tokens <input inputMode="numeric" value={run.nTokens}
          onChange={(e) => set({ nTokens: e.target.value })} data-testid="train-n-tokens" /></label>
        <label>Batch tokens <input inputMode="numeric" value={run.batchTokens} placeholder="default"
          onChange={(e) => set({ batchTokens: e.target.value })} data-testid="train-batch-tokens" /></label>
        <label>Context size <input inputMode="numeric" value={run.contextSize} placeholder="default"
          onChange={(e) => set({ contextSize: e.target.value })} data-testid="train-context-size" /></label>
        <label>Device <input value={run.device} placeholder="automatic" list="train-devices"
          onChange={(e) => set({ device: e.target.value })} data-testid="train-device" /></label>
        <label>Epochs <input inputMode="numeric" value={run.epochs} placeholder="1"
          title="Passes over the dataset, each in a new order: a small dataset can feed a longer run"
          onChange={(e) => set({ epochs: e.target.value })} data-testid="train-epochs" /></label>
        <label>Seed <input inputMode="numeric" value={run.seed} placeholder="0"
          onChange={(e) => set({ seed: e.target.value })} data-testid="train-seed" /></label>
        <datalist id="train-devices"><option value="cpu" /><option value="cuda" /><option value="mps" /></datalist>
      </div>
    </fieldset>
  );
}

function SAERow({ index }: { index: number }) {
  const sae = useSAEForm(index);
  const count = useSAECount();
  if (!sae) return null;
  const set = (patch: Parameters<typeof trainingActions.setSAE>[1]) => trainingActions.setSAE(index, patch);
  const usesK = USES_K.includes(sae.architecture);
  const n = index + 1;
  return (
    <fieldset className="train-sae" data-testid="train-sae-row" data-index={index}>
      <legend>{count > 1 ? `SAE ${n}` : "SAE"}</legend>
      <div className="form-row">
        <label className="grow">Hook <input value={sae.hook} onChange={(e) => set({ hook: e.target.value })}
          placeholder="e.g. blocks.6.hook_resid_post" aria-label={`Hook of SAE ${n}`} data-testid="train-hook" /></label>
        <label>Architecture
          <select value={sae.architecture} aria-label={`Architecture of SAE ${n}`} data-testid="train-architecture"
            onChange={(e) => set({ architecture: e.target.value as Architecture })}>
            {ARCHITECTURES.map((a) => <option key={a} value={a}>{ARCHITECTURE_NAMES[a]}</option>)}
          </select></label>
        <label>Width
          <span className="input-pair">
            <select value={sae.widthMode} aria-label={`Width unit of SAE ${n}`} data-testid="train-width-mode"
              onChange={(e) => set({ widthMode: e.target.value as "expansion" | "d_sae" })}>
              <option value="expansion">expansion ×</option>
              <option value="d_sae">d_sae</option>
            </select>
            <input className="num-input" inputMode="numeric" value={sae.width} aria-label={`Width of SAE ${n}`}
              onChange={(e) => set({ width: e.target.value })} data-testid="train-width" />
          </span></label>
        {usesK ? (
          <label>k <input className="num-input" inputMode="numeric" value={sae.k} aria-label={`k of SAE ${n}`}
            onChange={(e) => set({ k: e.target.value })} data-testid="train-k" /></label>
        ) : (
          <label>{sae.architecture === "jumprelu" ? "L0 coefficient" : "L1 coefficient"}
            <input className="num-input" value={sae.l1} placeholder="default" aria-label={`Sparsity coefficient of SAE ${n}`}
              onChange={(e) => set({ l1: e.target.value })} data-testid="train-l1" /></label>
        )}
        {sae.architecture === "matryoshka_batchtopk" && (
          <label>Nested widths <input value={sae.widths} placeholder="default" aria-label={`Matryoshka widths of SAE ${n}`}
            title="Comma-separated, e.g. 128, 512, 2048" onChange={(e) => set({ widths: e.target.value })}
            data-testid="train-widths" /></label>
        )}
        <label>Learning rate <input className="num-input" value={sae.lr} placeholder="for the budget"
          aria-label={`Learning rate of SAE ${n}`} title="Blank: the default chosen for the token budget"
          onChange={(e) => set({ lr: e.target.value })} data-testid="train-lr" /></label>
      </div>
      <div className="form-row">
        <label className="grow">Output hook (transcoder) <input value={sae.hookOut} placeholder="blank: reconstruct the input"
          aria-label={`Output hook of SAE ${n}`} onChange={(e) => set({ hookOut: e.target.value })} data-testid="train-hook-out" /></label>
        <label className="grow">Name <input value={sae.name} placeholder="default: from model, hook and width"
          aria-label={`Name of SAE ${n}`} onChange={(e) => set({ name: e.target.value })} data-testid="train-name" /></label>
        {count > 1 && (
          <button type="button" className="link" onClick={() => trainingActions.removeSAE(index)}>Remove</button>
        )}
      </div>
    </fieldset>
  );
}

function TrainForm() {
  const count = useSAECount();
  const starting = useStarting();
  const error = useStartError();
  const notice = useStartNotice();
  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    void trainingActions.start().then((run) => {
      if (run) jobActions.watch(run.jobId, () => void trainingActions.loadTrainings());
    });
  };
  return (
    <form className="card train-form" onSubmit={submit} aria-label="Start a training run" data-testid="train-form">
      <RunFields />
      {Array.from({ length: count }, (_, i) => <SAERow key={i} index={i} />)}
      <div className="actions">
        <button type="button" onClick={trainingActions.addSAE} data-testid="train-add-sae">Add another SAE</button>
        <button type="submit" className="primary" disabled={starting} data-testid="train-start">
          {starting ? "Starting…" : count > 1 ? `Train ${count} SAEs` : "Train"}
        </button>
      </div>
      <p className="muted">Several SAEs share one forward pass of the model. Running the same settings again after an
        interruption resumes that run from its last checkpoint.</p>
      <ErrorMessage message={error} testId="train-error" />
      {notice && <p className="notice" role="status" data-testid="train-notice">{notice}</p>}
    </form>
  );
}

/** One training's live numbers. */
function LiveStats({ trainingId, job }: { trainingId: string; job: Job | undefined }) {
  const training = useTraining(trainingId);
  const curves = useCurves(trainingId);
  const total = training?.n_training_tokens ?? (typeof job?.params?.n_tokens === "number" ? job.params.n_tokens : null);
  const live = liveMetrics(curves, total, job);
  const cells: [string, string, string][] = [
    ["tokens", live ? `${formatNumber(live.tokens)}${total ? ` / ${formatNumber(total)}` : ""}` : "—", "tokens"],
    ["tokens/s", formatNumber(live?.tokensPerSecond ? Math.round(live.tokensPerSecond) : null), "tokens-per-s"],
    ["ETA", formatDuration(live?.etaSeconds ?? (job?.status === "running" ? job.eta_seconds : null)), "eta"],
    ["L0", formatNumber(live?.l0, 1), "l0"],
    ["explained variance", formatPercent(live?.explainedVariance, 1), "ev"],
    ["dead fraction", formatPercent(live?.deadFraction, 1), "dead"],
  ];
  return (
    <dl className="metric-tiles" data-testid="live-stats" data-training-id={trainingId}>
      {cells.map(([label, value, id]) => (
        <div key={id} className="metric-tile"><dt>{label}</dt><dd data-testid={`live-${id}`}>{value}</dd></div>
      ))}
    </dl>
  );
}

function WatchedRunPanel() {
  const watched = useWatchedRun();
  const job = useJob(watched?.jobId);
  const [shown, setShown] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const trainingId = watched?.trainingIds[Math.min(shown, (watched?.trainingIds.length ?? 1) - 1)] ?? null;
  const training = useTraining(trainingId);
  useEffect(() => {
    if (!watched) return;
    setShown(0);
    void jobActions.refresh();
    jobActions.watch(watched.jobId, () => void trainingActions.loadTrainings());
  }, [watched]);
  const finished = job ? isFinished(job) : false;
  useEffect(() => {
    if (finished) void trainingActions.loadTrainings();
  }, [finished]);
  if (!watched || !trainingId) return null;
  const act = (fn: (id: string) => Promise<void>) => async () => {
    setError(null);
    try {
      await fn(watched.jobId);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const status = job?.status ?? training?.status ?? "queued";
  const live = status === "running" || status === "pending";
  return (
    <section className="card train-watch" aria-label="Training run" data-testid="train-watch" data-status={status}>
      <header className="card-header">
        <h2>{training?.name ?? "Training run"}</h2>
        <span className={`status status-${status}`} data-testid="train-status">{status}</span>
      </header>
      <ProgressBar value={job?.progress} label="Training progress" />
      {job?.message && <p className="muted" data-testid="train-message">{job.message}</p>}
      {job?.status === "failed" && <ErrorMessage message={job.error_message} />}
      {watched.trainingIds.length > 1 && (
        <div className="segmented" role="tablist" aria-label="SAEs of this run">
          {watched.trainingIds.map((id, i) => (
            <button key={id} type="button" role="tab" aria-selected={i === shown} onClick={() => setShown(i)}>
              SAE {i + 1}
            </button>
          ))}
        </div>
      )}
      <LiveStats trainingId={trainingId} job={job} />
      <div className="actions">
        {job?.status === "running" && <button type="button" onClick={act(jobActions.pause)}>Pause</button>}
        {job && (job.status === "paused" || job.status === "interrupted" || (job.status === "failed" && job.resumable)) && (
          <button type="button" onClick={act(jobActions.resume)}>Resume</button>
        )}
        {job && !finished && <button type="button" className="danger" onClick={act(jobActions.cancel)}>Cancel</button>}
        {training?.sae_id && (
          <span data-testid="trained-sae-link"><SAELink saeId={training.sae_id}>Open the trained SAE →</SAELink></span>
        )}
      </div>
      <ErrorMessage message={error} />
      <TrainingCurves trainingId={trainingId} live={live} key={trainingId} title="Curves" />
    </section>
  );
}

function TrainingRow({ training }: { training: Training }) {
  const job = useJob(training.job_id);
  const status = job?.status ?? training.status;
  return (
    <tr data-testid="training-row" data-status={status} data-training-id={training.id}>
      <td>{training.name}</td>
      <td><span className={`status status-${status}`}>{status}</span></td>
      <td>{training.architecture ?? "—"}</td>
      <td className="mono">{training.hook_name ?? "—"}{training.hook_name_out ? ` → ${training.hook_name_out}` : ""}</td>
      <td className="num">{formatNumber(training.tokens_seen ?? null)}{training.n_training_tokens ? ` / ${formatNumber(training.n_training_tokens)}` : ""}</td>
      <td className="num">{formatDuration(training.wall_time_s ?? null)}</td>
      <td>{training.device ?? "—"}</td>
      <td><div className="row-actions">
        {training.job_id && <button type="button" onClick={() => trainingActions.watch(training)}>Watch</button>}
        {training.sae_id && <SAELink saeId={training.sae_id}>SAE</SAELink>}
      </div></td>
    </tr>
  );
}

function TrainingsList() {
  const trainings = useTrainings();
  const error = useTrainingsError();
  return (
    <section aria-labelledby="trainings-title">
      <h2 id="trainings-title">Training runs</h2>
      <ErrorMessage message={error} />
      {trainings.length === 0 ? <p className="muted">No training runs yet.</p> : (
        <div className="table-wrap">
          <table className="jobs-table" aria-label="Training runs" data-testid="trainings-table">
            <thead><tr><th>Name</th><th>Status</th><th>Architecture</th><th>Hook</th><th className="num">Tokens</th>
              <th className="num">Wall time</th><th>Device</th><th>Actions</th></tr></thead>
            <tbody>{trainings.map((t) => <TrainingRow key={t.id} training={t} />)}</tbody>
          </table>
        </div>
      )}
    </section>
  );
}

const ACTIVE_TRAINING = ["queued", "pending", "running", "paused", "interrupted"];

export function TrainPage() {
  useEffect(() => {
    void trainingActions.loadTrainings().then(() => {
      const { trainings, watched } = useTrainingStore.getState();
      const active = trainings.find((t) => t.job_id && ACTIVE_TRAINING.includes(t.status));
      if (!watched && active) trainingActions.watch(active);
    });
  }, []);
  return (
    <section className="panel" aria-labelledby="train-title" data-testid="train-page">
      <h1 id="train-title">Train an SAE</h1>
      <p className="muted">Activations come from the model's own forward pass over the dataset's windows, streamed
        through a shuffling buffer. Give an output hook to train a transcoder.</p>
      <TrainForm />
      <WatchedRunPanel />
      <TrainingsList />
    </section>
  );
}
