/** A feature's explanations with their method, model and score badges; explaining and scoring that feature. */
import { useState } from "react";
import type { Explanation } from "../api/types";
import { isFinished } from "../api/watchJob";
import { formatNumber } from "../lib/format";
import { autointerpActions, taskKey, useTask } from "../stores/autointerpStore";
import { featureActions, useDashboard } from "../stores/featuresStore";
import { useJob } from "../stores/jobsStore";
import { ErrorMessage } from "./ErrorMessage";
import { EndpointFields, RunProgress } from "./ExplainFeatures";

/** The CSS class of a score badge: good, fair or poor (balanced accuracy: 0.5 is chance). */
function scoreClass(score: number): string {
  return score >= 0.75 ? "score-good" : score >= 0.6 ? "score-fair" : "score-poor";
}

/** One score as a badge: `detection 0.82`. */
export function ScoreBadge({ scorer, score, model }: { scorer: string; score: number; model?: string | null }) {
  return (
    <span className={`badge score-badge ${scoreClass(score)}`} data-testid="score-badge"
      title={model ? `scored by ${model}` : undefined}>
      {scorer} {formatNumber(score, 2)}
    </span>
  );
}

/** The feature's explanations, each with its source, method, model and scores, and a "Score" action. */
export function ExplanationList({ saeId, index, explanations }: { saeId: string; index: number; explanations: Explanation[] }) {
  const [scoring, setScoring] = useState<string | null>(null);
  const key = taskKey.score(saeId, index);
  const { jobId, error } = useTask(key);
  const job = useJob(jobId);
  const running = job !== undefined && !isFinished(job);
  const startScore = (e: React.FormEvent) => {
    e.preventDefault();
    void autointerpActions.score(key, saeId, autointerpActions.scoreBody({ explanation_ids: scoring ? [scoring] : null, force: true }),
      () => void featureActions.loadDashboard(saeId, index));
  };
  return (
    <section className="card" aria-labelledby="explanations-title" data-testid="explanations">
      <h2 id="explanations-title">Explanations</h2>
      {explanations.length === 0 && <p className="muted">No explanations yet. Add a label above, or use Explain.</p>}
      <ul className="explanation-list">
        {explanations.map((ex) => (
          <li key={ex.id} data-testid="explanation">
            <span className="explanation-text">{ex.description}</span>
            <span className="explanation-meta">
              <span className="tag">{ex.source}</span>
              {ex.method ? <span className="muted"> {ex.method}</span> : null}
              {ex.model ? <span className="muted"> · {ex.model}</span> : null}
              {typeof ex.score === "number" ? <span className="muted"> · score {formatNumber(ex.score, 3)}</span> : null}
            </span>
            <span className="explanation-scores">
              {ex.scores.map((s, i) => <ScoreBadge key={`${s.scorer}-${i}`} scorer={s.scorer} score={s.score} model={s.model} />)}
              <button type="button" className="link" onClick={() => setScoring(ex.id)} disabled={running}>Score</button>
            </span>
          </li>
        ))}
      </ul>
      {scoring !== null && explanations.length > 0 && (
        <form className="form-grid" onSubmit={startScore} aria-label="Score explanations" data-testid="score-form">
          <EndpointFields scorer />
          <div className="form-actions">
            <button type="submit" className="primary" disabled={running}>{running ? "Scoring…" : "Score this explanation"}</button>
            <button type="button" onClick={() => setScoring(null)}>Close</button>
          </div>
        </form>
      )}
      <ErrorMessage message={error} testId="score-error" />
      <RunProgress jobId={jobId} label="Scoring" testId="score-progress" />
    </section>
  );
}

/** The "Explain" form of a feature's dashboard: endpoint, model, key, method → a job, then the new explanation. */
export function ExplainFeature({ saeId, index, onClose }: { saeId: string; index: number; onClose: () => void }) {
  const key = taskKey.feature(saeId, index);
  const { jobId, error } = useTask(key);
  const job = useJob(jobId);
  const { dashboard } = useDashboard(saeId, index);
  const running = job !== undefined && !isFinished(job);
  const latest = dashboard?.explanations.filter((e) => e.source === "generated").at(-1);
  const start = (e: React.FormEvent) => {
    e.preventDefault();
    void autointerpActions.explain(key, saeId, autointerpActions.explainBody({ features: String(index), force: true }),
      () => void featureActions.loadDashboard(saeId, index));
  };
  return (
    <section className="card" aria-labelledby="explain-title" data-testid="explain-feature">
      <h2 id="explain-title">Explain feature {index}</h2>
      <form className="form-grid" onSubmit={start}>
        <EndpointFields method />
        <div className="form-actions">
          <button type="submit" className="primary" disabled={running}>{running ? "Explaining…" : "Explain this feature"}</button>
          <button type="button" onClick={onClose}>Close</button>
        </div>
      </form>
      <ErrorMessage message={error} testId="explain-error" />
      <RunProgress jobId={jobId} label="Explaining" testId="explain-progress" />
      {job?.status === "completed" && latest && (
        <p className="notice" data-testid="new-explanation">
          New explanation: <strong>{latest.description}</strong>
          <span className="muted"> · {latest.method}{latest.model ? ` · ${latest.model}` : ""}</span>
        </p>
      )}
    </section>
  );
}
