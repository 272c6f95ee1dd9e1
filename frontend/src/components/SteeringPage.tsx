/**
 * Steering with an SAE's features (Neuronpedia's semantics): pick features (search by label, top token or
 * index), a strength per feature, the method and sampling settings, a prompt or a chat turn; DEFAULT and STEERED
 * completions side by side with token log-probabilities on hover; Neuronpedia's answer beside ours with a flag
 * when the DEFAULT completions differ; a strength sweep table; past runs, reopenable.
 */
import { useEffect, useState } from "react";
import type { GeneratedToken, SteerComparison, SteerCompletion } from "../api/types";
import { chipToken, displayToken, formatNumber } from "../lib/format";
import { navigate } from "../lib/router";
import {
  STEER_METHODS,
  steeringActions,
  useCompareSettings,
  useFeatureSearch,
  useOpenedRunId,
  useSteerError,
  useSteerFeature,
  useSteerFeatureIndexes,
  useSteeringRuns,
  useSteerResult,
  useSteerRunning,
  useSteerSettings,
  useSweepResult,
  useSweepText,
  type SteerMethod,
} from "../stores/steeringStore";
import { ErrorMessage } from "./ErrorMessage";

const STRENGTH_MIN = -300;
const STRENGTH_MAX = 300;

function FeatureRow({ index }: { index: number }) {
  const feature = useSteerFeature(index);
  if (!feature) return null;
  return (
    <li className="steer-feature" data-testid="steer-feature" data-index={index}>
      <span className="mono">#{index}</span>
      {feature.label && <span className="muted"> {feature.label}</span>}
      <input type="range" min={STRENGTH_MIN} max={STRENGTH_MAX} step={0.5} value={feature.strength}
        aria-label={`Strength of feature ${index}`}
        onChange={(e) => steeringActions.setStrength(index, Number(e.target.value))} />
      <input type="number" className="num-input" step={0.5} value={feature.strength}
        aria-label={`Strength value of feature ${index}`}
        onChange={(e) => steeringActions.setStrength(index, Number(e.target.value))} />
      <button type="button" className="link" onClick={() => steeringActions.removeFeature(index)}
        aria-label={`Remove feature ${index}`}>Remove</button>
    </li>
  );
}

function FeaturePicker() {
  const [text, setText] = useState("");
  const results = useFeatureSearch();
  const indexes = useSteerFeatureIndexes();
  const asIndex = /^\d+$/.test(text.trim()) ? Number(text.trim()) : null;
  useEffect(() => {
    const timer = setTimeout(() => void steeringActions.searchFeatures(text), 200);
    return () => clearTimeout(timer);
  }, [text]);
  return (
    <div className="steer-picker">
      <label className="grow">
        Add a feature
        <input value={text} onChange={(e) => setText(e.target.value)} placeholder="label, top token or index"
          data-testid="steer-feature-search" />
      </label>
      <ul className="steer-search" aria-label="Matching features">
        {asIndex !== null && !indexes.includes(asIndex) && (
          <li><button type="button" onClick={() => { steeringActions.addFeature(asIndex); setText(""); }}>
            Feature #{asIndex}</button></li>
        )}
        {results.filter((f) => !indexes.includes(f.feature_index)).map((f) => (
          <li key={f.feature_index}>
            <button type="button" onClick={() => { steeringActions.addFeature(f.feature_index, f.label); setText(""); }}>
              #{f.feature_index} {f.label ?? ""} {f.top_token !== null && <span className="token-chip">{chipToken(f.top_token)}</span>}
            </button>
          </li>
        ))}
      </ul>
      <ul className="steer-features" aria-label="Steering features">
        {indexes.map((i) => <FeatureRow key={i} index={i} />)}
      </ul>
      {indexes.length === 0 && <p className="muted">No features yet: search above, or open this page from a feature.</p>}
    </div>
  );
}

function Settings() {
  const s = useSteerSettings();
  const set = steeringActions.setSettings;
  const num = (value: string, fallback: number) => (value === "" || !Number.isFinite(Number(value)) ? fallback : Number(value));
  return (
    <fieldset className="steer-settings">
      <legend>Generation</legend>
      <label className="grow">
        {s.chat ? "User message" : "Prompt"}
        <textarea rows={3} value={s.prompt} onChange={(e) => set({ prompt: e.target.value })} data-testid="steer-prompt" />
      </label>
      <div className="form-row">
        <label className="check-label"><input type="checkbox" checked={s.chat} onChange={(e) => set({ chat: e.target.checked })} /> Chat template</label>
        <label>
          Method
          <select value={s.method} onChange={(e) => set({ method: e.target.value as SteerMethod })} data-testid="steer-method">
            {STEER_METHODS.map((m) => <option key={m} value={m}>{m}</option>)}
          </select>
        </label>
        <label>Tokens <input type="number" min={1} max={256} value={s.nTokens}
          onChange={(e) => set({ nTokens: num(e.target.value, s.nTokens) })} data-testid="steer-n-tokens" /></label>
        <label>Temperature <input type="number" min={0} max={2} step={0.1} value={s.temperature}
          onChange={(e) => set({ temperature: num(e.target.value, s.temperature) })} data-testid="steer-temperature" /></label>
        <label>Seed <input type="number" value={s.seed} onChange={(e) => set({ seed: num(e.target.value, s.seed) })} /></label>
        <label>Freq. penalty <input type="number" step={0.1} min={-2} max={2} value={s.freqPenalty}
          onChange={(e) => set({ freqPenalty: num(e.target.value, s.freqPenalty) })} /></label>
        <label>Strength × <input type="number" step={0.1} value={s.strengthMultiplier}
          onChange={(e) => set({ strengthMultiplier: num(e.target.value, s.strengthMultiplier) })} /></label>
        <label className="check-label"><input type="checkbox" checked={s.normalize} onChange={(e) => set({ normalize: e.target.checked })} /> Normalize</label>
        <label className="check-label"><input type="checkbox" checked={s.steerSpecialTokens}
          onChange={(e) => set({ steerSpecialTokens: e.target.checked })} /> Steer special tokens</label>
      </div>
    </fieldset>
  );
}

function CompareOptions() {
  const c = useCompareSettings();
  const set = steeringActions.setCompare;
  return (
    <fieldset className="steer-compare">
      <legend>Compare with Neuronpedia</legend>
      <label className="check-label"><input type="checkbox" checked={c.enabled} onChange={(e) => set({ enabled: e.target.checked })}
        data-testid="steer-compare-toggle" /> Also ask Neuronpedia</label>
      {c.enabled && (
        <div className="form-row">
          <label>Host <input value={c.host} onChange={(e) => set({ host: e.target.value })} data-testid="steer-compare-host" /></label>
          <label>API key <input type="password" value={c.apiKey} onChange={(e) => set({ apiKey: e.target.value })}
            data-testid="steer-compare-key" autoComplete="off" /></label>
          <label>Source <input value={c.source} onChange={(e) => set({ source: e.target.value })}
            placeholder="default: the SAE's Neuronpedia id" /></label>
        </div>
      )}
    </fieldset>
  );
}

function TokenText({ tokens, testId }: { tokens: GeneratedToken[]; testId: string }) {
  const [hover, setHover] = useState<number | null>(null);
  const shown = hover !== null ? tokens[hover] : null;
  return (
    <div data-testid={testId}>
      <p className="tokens completion">
        {tokens.map((t, i) => (
          <span key={i} className="tok" tabIndex={0} data-testid="completion-token"
            title={`${JSON.stringify(t.token)}: logprob ${formatNumber(t.logprob, 3)}`}
            onMouseEnter={() => setHover(i)} onMouseLeave={() => setHover(null)}
            onFocus={() => setHover(i)} onBlur={() => setHover(null)}>
            {displayToken(t.token)}
          </span>
        ))}
      </p>
      <p className="muted hover-readout" aria-live="polite" data-testid="logprob-readout">
        {shown ? `${JSON.stringify(shown.token)} logprob ${formatNumber(shown.logprob, 3)}` +
          (shown.top_logprobs?.length ? ` · top: ${shown.top_logprobs.map((c) => `${JSON.stringify(c.token)} ${formatNumber(c.logprob, 2)}`).join(", ")}` : "")
          : "Hover a token for its log-probability"}
      </p>
    </div>
  );
}

function Pane({ title, completion, text, testId }: { title: string; completion?: SteerCompletion | null;
  text?: string | null; testId: string }) {
  return (
    <article className="card steer-pane" data-testid={testId}>
      <h3>{title}</h3>
      {completion ? <TokenText tokens={completion.logprobs} testId={`${testId}-tokens`} />
        : <p className="completion">{text ?? "—"}</p>}
    </article>
  );
}

function Comparison({ comparison }: { comparison: SteerComparison }) {
  return (
    <section aria-label="Neuronpedia comparison" data-testid="steer-comparison">
      <h2>Neuronpedia ({comparison.source})</h2>
      {comparison.error && <ErrorMessage message={comparison.error} />}
      {comparison.message && (
        <p className={comparison.mismatch ? "error-message" : "notice"} role="status" data-testid="steer-match">
          {comparison.mismatch ? "⚠ " : "✓ "}{comparison.message}
        </p>
      )}
      <div className="steer-panes">
        <Pane title="Neuronpedia DEFAULT" text={comparison.DEFAULT?.text} testId="np-default" />
        <Pane title="Neuronpedia STEERED" text={comparison.STEERED?.text} testId="np-steered" />
      </div>
    </section>
  );
}

function Results() {
  const result = useSteerResult();
  if (!result) return null;
  return (
    <section aria-label="Completions">
      <div className="steer-panes">
        <Pane title="DEFAULT" completion={result.DEFAULT} testId="steer-default" />
        <Pane title="STEERED" completion={result.STEERED} testId="steer-steered" />
      </div>
      {result.comparison && <Comparison comparison={result.comparison} />}
    </section>
  );
}

function Sweep() {
  const sweepText = useSweepText();
  const sweep = useSweepResult();
  const running = useSteerRunning();
  return (
    <section aria-label="Strength sweep" className="steer-sweep">
      <h2>Strength sweep</h2>
      <div className="form-row">
        <label className="grow">Strength multipliers <input value={sweepText}
          onChange={(e) => steeringActions.setSweepText(e.target.value)} data-testid="steer-sweep-values" /></label>
        <button type="button" disabled={running !== null} onClick={() => void steeringActions.runSweep()}>
          {running === "sweep" ? "Sweeping…" : "Run sweep"}</button>
      </div>
      {sweep && (
        <table data-testid="steer-sweep-table">
          <thead><tr><th>Multiplier</th><th>Completion</th></tr></thead>
          <tbody>
            <tr><td>DEFAULT</td><td className="completion">{sweep.DEFAULT.text}</td></tr>
            {sweep.rows.map((row) => (
              <tr key={row.strength_multiplier} data-testid="steer-sweep-row">
                <td className="num">{formatNumber(row.strength_multiplier, 3)}</td>
                <td className="completion">{row.STEERED.text}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function PastRuns() {
  const runs = useSteeringRuns();
  const opened = useOpenedRunId();
  return (
    <section aria-label="Past runs" className="steer-runs">
      <h2>Past runs</h2>
      {runs.length === 0 && <p className="muted">No runs yet.</p>}
      <ul data-testid="steer-runs">
        {runs.map((run) => (
          <li key={run.id} aria-current={run.id === opened ? "true" : undefined}>
            <button type="button" className="link" onClick={() => void steeringActions.openRun(run.id)} data-testid="steer-run">
              {run.kind === "sweep" ? "Sweep" : "Steer"} · {run.features.map((f) => `#${f.index}×${f.strength}`).join(" ")} ·{" "}
              {JSON.stringify(run.prompt.length > 40 ? `${run.prompt.slice(0, 40)}…` : run.prompt)}
            </button>
            <span className="muted"> {new Date(run.created_at).toLocaleString()}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function SteeringPage({ saeId, feature }: { saeId: string; feature?: number | null }) {
  const running = useSteerRunning();
  const error = useSteerError();
  const indexes = useSteerFeatureIndexes();
  const { prompt } = useSteerSettings();
  useEffect(() => steeringActions.open(saeId, feature), [saeId, feature]);
  const saePath = `/saes/${encodeURIComponent(saeId)}`;
  return (
    <section className="panel" aria-labelledby="steer-title" data-testid="steering-page">
      <nav className="breadcrumbs">
        <a href="/" onClick={(e) => { e.preventDefault(); navigate("/"); }}>SAEs</a> /{" "}
        <a href={saePath} onClick={(e) => { e.preventDefault(); navigate(saePath); }}>SAE</a> / steering
      </nav>
      <h1 id="steer-title">Steering</h1>
      <FeaturePicker />
      <Settings />
      <CompareOptions />
      <div className="actions">
        <button type="button" className="primary" disabled={running !== null || indexes.length === 0 || !prompt.trim()}
          onClick={() => void steeringActions.run()} data-testid="steer-run-button">
          {running === "steer" ? "Generating…" : "Steer"}
        </button>
      </div>
      <ErrorMessage message={error} testId="steer-error" />
      <Results />
      <Sweep />
      <PastRuns />
    </section>
  );
}
