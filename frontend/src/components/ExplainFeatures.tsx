/**
 * Auto-interp forms: the endpoint fields (any OpenAI-compatible chat API), a run's live progress, and the
 * "Explain features…" dialog of the SAE page (features, limits and prices → the estimate, then start; then score).
 */
import { useEffect, useState } from "react";
import type { ExplainEstimate } from "../api/types";
import { isFinished } from "../api/watchJob";
import { formatDuration, formatNumber } from "../lib/format";
import {
  autointerpActions,
  SCORERS,
  taskKey,
  useEndpointSettings,
  useExplainMethods,
  useTask,
  type Scorer,
} from "../stores/autointerpStore";
import { jobActions, useJob } from "../stores/jobsStore";
import { ErrorMessage } from "./ErrorMessage";
import { Modal } from "./Modal";
import { ProgressBar } from "./ProgressBar";

/** Endpoint URL, model, API key and (optionally) the explain method or the scorer. */
export function EndpointFields({ method = false, scorer = false }: { method?: boolean; scorer?: boolean }) {
  const settings = useEndpointSettings();
  const methods = useExplainMethods();
  const set = autointerpActions.setSettings;
  useEffect(() => {
    if (method) void autointerpActions.loadMethods();
  }, [method]);
  return (
    <>
      <label>
        Endpoint
        <input value={settings.endpoint} onChange={(e) => set({ endpoint: e.target.value })} required
          spellCheck={false} placeholder="http://localhost:8000/v1" aria-describedby="endpoint-help" />
      </label>
      <label>
        Model
        <input value={settings.model} onChange={(e) => set({ model: e.target.value })} required spellCheck={false}
          placeholder="e.g. gpt-4o-mini, Qwen/Qwen2.5-7B-Instruct" />
      </label>
      <label>
        API key
        <input type="password" value={settings.apiKey} onChange={(e) => set({ apiKey: e.target.value })}
          autoComplete="off" placeholder="optional (local servers need none)" />
      </label>
      {method && (
        <label>
          Method
          <select value={settings.method} onChange={(e) => set({ method: e.target.value })}>
            {methods.map((m) => <option key={m} value={m}>{m}</option>)}
          </select>
        </label>
      )}
      {scorer && (
        <label>
          Scorer
          <select value={settings.scorer} onChange={(e) => set({ scorer: e.target.value as Scorer })}>
            {SCORERS.map((m) => <option key={m} value={m}>{m}</option>)}
          </select>
        </label>
      )}
      <p id="endpoint-help" className="muted form-help">
        Any OpenAI-compatible chat API: a hosted one, or a local vLLM, llama.cpp or Ollama server (…/v1).
      </p>
    </>
  );
}

/** A run's progress, message and a cancel button while it runs. */
export function RunProgress({ jobId, label, testId }: { jobId: string | undefined; label: string; testId?: string }) {
  const job = useJob(jobId);
  if (!job) return null;
  const running = !isFinished(job);
  return (
    <div className="job-progress" data-testid={testId}>
      <ProgressBar value={job.progress} label={`${label} progress`} />
      <p className="muted progress-message" role="status">
        {job.status === "completed" ? `${label} complete.` : job.status === "failed" ? `${label} failed.` :
          `${job.status}${job.current_stage ? ` · ${job.current_stage}` : ""}${job.message ? ` · ${job.message}` : ""}`
          + `${job.eta_seconds !== null && job.eta_seconds !== undefined ? ` · ~${formatDuration(job.eta_seconds)} left` : ""}`}
      </p>
      {job.status === "failed" && <ErrorMessage message={job.error_message} />}
      {running && <button type="button" onClick={() => void jobActions.cancel(job.id)}>Cancel</button>}
    </div>
  );
}

/** The estimate of a run, in words. */
export function EstimateView({ estimate }: { estimate: ExplainEstimate }) {
  return (
    <p className="notice" data-testid="explain-estimate">
      {formatNumber(estimate.n_features)} feature(s) · {formatNumber(estimate.n_requests)} request(s) ·{" "}
      ~{formatNumber(estimate.prompt_tokens)} prompt + ~{formatNumber(estimate.completion_tokens)} completion tokens
      {typeof estimate.cost_usd === "number" ? ` · ~$${estimate.cost_usd.toFixed(estimate.cost_usd < 1 ? 4 : 2)}` : " · cost: give prices to estimate"}
      {typeof estimate.seconds === "number" ? ` · ~${formatDuration(estimate.seconds)}` : ""}
    </p>
  );
}

const numberOrNull = (v: string): number | null => (v.trim() === "" ? null : Number(v));

/** "Explain features…": choose the features, see the estimate, start, follow; then score what was explained. */
export function ExplainFeatures({ saeId, onClose, onFinished }: { saeId: string; onClose: () => void; onFinished: () => void }) {
  const settings = useEndpointSettings();
  const key = taskKey.sae(saeId);
  const scoreKey = taskKey.saeScore(saeId);
  const { jobId, estimate, error } = useTask(key);
  const score = useTask(scoreKey);
  const job = useJob(jobId);
  const [features, setFeatures] = useState("");
  const [unlabelledOnly, setUnlabelledOnly] = useState(true);
  const [maxCost, setMaxCost] = useState("");
  const [priceIn, setPriceIn] = useState("");
  const [priceOut, setPriceOut] = useState("");
  const [force, setForce] = useState(false);
  const [estimated, setEstimated] = useState<string | null>(null);

  const body = () => autointerpActions.explainBody({
    features: features.trim() || null, labeled: unlabelledOnly ? false : null, force,
    max_cost_usd: numberOrNull(maxCost), price_per_1m_input: numberOrNull(priceIn),
    price_per_1m_output: numberOrNull(priceOut),
  });
  const fingerprint = JSON.stringify({ ...body(), api_key: null });
  const runEstimate = async (e: React.FormEvent) => {
    e.preventDefault();
    if (await autointerpActions.estimate(key, saeId, body())) setEstimated(fingerprint);
  };
  const start = () => void autointerpActions.explain(key, saeId, body(), () => onFinished());
  const startScore = () => void autointerpActions.score(scoreKey, saeId, autointerpActions.scoreBody({
    features: features.trim() || null, concurrency: settings.concurrency,
  }), () => onFinished());
  const running = job !== undefined && !isFinished(job);

  return (
    <Modal title="Explain features" onClose={onClose} wide testId="explain-features">
      <form className="form-grid" onSubmit={runEstimate}>
        <EndpointFields method />
        <label>
          Features
          <input value={features} onChange={(e) => setFeatures(e.target.value)} spellCheck={false}
            placeholder="all, or 0-99 or 1,5,9" />
        </label>
        <label className="checkbox">
          <input type="checkbox" checked={unlabelledOnly} onChange={(e) => setUnlabelledOnly(e.target.checked)} />
          Unlabelled features only
        </label>
        <label className="checkbox">
          <input type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} />
          Explain again features this method already explained
        </label>
        <label>
          Concurrency
          <input type="number" min={1} max={256} value={settings.concurrency}
            onChange={(e) => autointerpActions.setSettings({ concurrency: Number(e.target.value) || 1 })} />
        </label>
        <label>
          Max cost (USD)
          <input type="number" min={0} step="any" value={maxCost} onChange={(e) => setMaxCost(e.target.value)} placeholder="no limit" />
        </label>
        <label>
          Price / 1M input tokens
          <input type="number" min={0} step="any" value={priceIn} onChange={(e) => setPriceIn(e.target.value)} placeholder="USD" />
        </label>
        <label>
          Price / 1M output tokens
          <input type="number" min={0} step="any" value={priceOut} onChange={(e) => setPriceOut(e.target.value)} placeholder="USD" />
        </label>
        <div className="form-actions">
          <button type="submit" disabled={running}>Estimate</button>
          <button type="button" className="primary" disabled={running || estimated !== fingerprint || !estimate}
            onClick={start} title={estimated !== fingerprint ? "Estimate first" : undefined}>
            {running ? "Explaining…" : "Start explaining"}
          </button>
        </div>
      </form>
      {estimate && estimated === fingerprint && <EstimateView estimate={estimate} />}
      <ErrorMessage message={error} testId="explain-error" />
      <RunProgress jobId={jobId} label="Explaining" testId="explain-progress" />
      {job?.status === "completed" && (
        <section className="card" aria-labelledby="score-step-title">
          <h3 id="score-step-title">Score the explanations</h3>
          <p className="muted">Detection and fuzzing: balanced accuracy of the model telling activating from
            non-activating examples given the explanation (0.5 = chance). Simulation needs log-probabilities.</p>
          <div className="form-row">
            <label>
              Scorer
              <select value={settings.scorer}
                onChange={(e) => autointerpActions.setSettings({ scorer: e.target.value as Scorer })}>
                {SCORERS.map((m) => <option key={m} value={m}>{m}</option>)}
              </select>
            </label>
            <button type="button" className="primary" onClick={startScore}>Score explanations</button>
          </div>
          <ErrorMessage message={score.error} testId="score-error" />
          <RunProgress jobId={score.jobId} label="Scoring" testId="score-progress" />
        </section>
      )}
    </Modal>
  );
}
