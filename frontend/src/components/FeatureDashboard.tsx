/** A Neuronpedia-like dashboard of one feature: examples, histograms, logit tables, top tokens, label. */
import { useEffect, useState } from "react";
import type { ActivationExample, LogitEntry, Statistics as FeatureStatistics } from "../api/types";
import { chipToken, formatNumber, formatPercent } from "../lib/format";
import { navigate } from "../lib/router";
import { featureActions, useDashboard } from "../stores/featuresStore";
import { ErrorMessage } from "./ErrorMessage";
import { ExplainFeature, ExplanationList } from "./FeatureExplanations";
import { FeatureTestBox } from "./FeatureTestBox";
import { HistogramChart } from "./HistogramChart";
import { TokenSequence } from "./TokenSequence";

const LOGIT_ROWS = 10;

function LogitTable({ title, rows, sign }: { title: string; rows: LogitEntry[]; sign: "pos" | "neg" }) {
  const [all, setAll] = useState(false);
  return (
    <div className="logit-table" data-testid={`logits-${sign}`}>
      <h3>{title}</h3>
      <table>
        <tbody>
          {(all ? rows : rows.slice(0, LOGIT_ROWS)).map((r) => (
            <tr key={`${r.token_id}`}>
              <td><span className={`token-chip logit-${sign}`}>{chipToken(r.token)}</span></td>
              <td className="num">{formatNumber(r.value, 3)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && <p className="muted">No data.</p>}
      {rows.length > LOGIT_ROWS && (
        <button type="button" className="link" onClick={() => setAll(!all)}>{all ? "Show fewer" : `Show all ${rows.length}`}</button>
      )}
    </div>
  );
}

function LabelEditor({ saeId, index, label }: { saeId: string; index: number; label: string | null | undefined }) {
  const saveLabel = featureActions.saveLabel;
  const [value, setValue] = useState(label ?? "");
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setValue(label ?? ""), [label]);
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await saveLabel(saeId, index, value.trim());
      setStatus("Saved");
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <form className="form-row" onSubmit={save}>
      <label className="grow">
        Label
        <input value={value} onChange={(e) => { setValue(e.target.value); setStatus(null); }} placeholder="What does this feature respond to?" />
      </label>
      <button type="submit">Save label</button>
      <span className="muted save-status" role="status">{status}</span>
      <ErrorMessage message={error} />
    </form>
  );
}

const STAT_LABELS: [keyof FeatureStatistics & string, string, (v: number) => string][] = [
  ["activation_frequency", "Frequency", (v) => formatPercent(v, 3)],
  ["max_activation", "Max activation", (v) => formatNumber(v, 4)],
  ["mean_activation", "Mean (active)", (v) => formatNumber(v, 4)],
  ["std_activation", "Std (active)", (v) => formatNumber(v, 4)],
  ["min_activation", "Min (nonzero)", (v) => formatNumber(v, 4)],
  ["n_active", "Active tokens", (v) => formatNumber(v)],
  ["n_tokens", "Tokens seen", (v) => formatNumber(v)],
  ["l0_contribution", "L0 contribution", (v) => formatNumber(v, 4)],
];

function Statistics({ stats }: { stats: FeatureStatistics }) {
  const quantiles = Object.entries(stats.quantiles).filter((e): e is [string, number] => typeof e[1] === "number");
  return (
    <dl className="stat-grid" data-testid="feature-statistics">
      {STAT_LABELS.map(([k, label, fmt]) => {
        const v = stats[k];
        return typeof v === "number" ? <div key={k}><dt>{label}</dt><dd>{fmt(v)}</dd></div> : null;
      })}
      {quantiles.map(([k, v]) => <div key={k}><dt>{k}</dt><dd>{formatNumber(v, 4)}</dd></div>)}
      {stats.dead === true && <div><dt>Status</dt><dd className="tag">dead</dd></div>}
    </dl>
  );
}

export function FeatureDashboard({ saeId, index }: { saeId: string; index: number }) {
  const { dashboard, error } = useDashboard(saeId, index);
  const loadDashboard = featureActions.loadDashboard;
  const [explaining, setExplaining] = useState(false);

  useEffect(() => {
    void loadDashboard(saeId, index);
  }, [loadDashboard, saeId, index]);

  const saePath = `/saes/${encodeURIComponent(saeId)}`;
  const go = (i: number) => navigate(`${saePath}/features/${i}`);
  const maxAct = dashboard ? dashboard.statistics.max_activation ||
    Math.max(0, ...dashboard.activations.map((a) => a.max_value)) : 0;

  return (
    <section className="panel" aria-labelledby="feature-title" data-testid="feature-dashboard">
      <nav className="breadcrumbs">
        <a href="/" onClick={(e) => { e.preventDefault(); navigate("/"); }}>SAEs</a> /{" "}
        <a href={saePath} onClick={(e) => { e.preventDefault(); navigate(saePath); }}>SAE</a> / feature {index}
      </nav>
      <header className="panel-header">
        <h1 id="feature-title">Feature {index}{dashboard?.label ? ` — ${dashboard.label}` : ""}</h1>
        <div className="actions">
          <button type="button" disabled={index <= 0} onClick={() => go(index - 1)}>← Previous</button>
          <button type="button" onClick={() => go(index + 1)}>Next →</button>
          <button type="button" onClick={() => navigate(`${saePath}/steer?feature=${index}`)}>Steer with this feature</button>
          <button type="button" aria-expanded={explaining} onClick={() => setExplaining(!explaining)}>Explain</button>
        </div>
      </header>
      {explaining && <ExplainFeature saeId={saeId} index={index} onClose={() => setExplaining(false)} />}
      <ErrorMessage message={error} testId="dashboard-error" />
      {!dashboard && !error && <p className="muted">Loading…</p>}
      {dashboard && (
        <>
          <LabelEditor saeId={saeId} index={index} label={dashboard.label} />
          <div className="dashboard-grid">
            <div className="dashboard-side">
              <section className="card">
                <h2>Statistics</h2>
                <Statistics stats={dashboard.statistics} />
              </section>
              <section className="card">
                <HistogramChart histogram={dashboard.histogram} title="Activation density" testId="activation-histogram" />
                <HistogramChart histogram={dashboard.logits.histogram} title="Logit effects" color="var(--accent-2)" testId="logit-histogram" />
              </section>
              <section className="card logits">
                <LogitTable title="Negative logits" rows={dashboard.logits.top_negative} sign="neg" />
                <LogitTable title="Positive logits" rows={dashboard.logits.top_positive} sign="pos" />
                <p className="muted logit-convention" data-testid="logit-convention"
                   title={"The decoder row times W_U with the final norm's gain folded in (TransformerLens fold_ln), not "
                     + "centred. Neuronpedia exports default to SAEDashboard's convention: unit-norm decoder rows and W_U "
                     + "as TransformerLens from_pretrained processes it (also centred over the vocabulary), so values "
                     + "differ by a per-feature scale and shift; the ranking is the same unless the SAE's "
                     + "model_from_pretrained_kwargs turn fold_ln off."}>
                  Logit lens: final-norm gain folded into W_U (miStudio); Neuronpedia exports use SAEDashboard's W_U.
                </p>
              </section>
              <section className="card">
                <h2>Top tokens</h2>
                <table className="compact" data-testid="top-tokens">
                  <thead><tr><th>Token</th><th className="num">Count</th><th className="num">Total act.</th></tr></thead>
                  <tbody>
                    {dashboard.top_tokens.map((t) => (
                      <tr key={t.token_id}>
                        <td><span className="token-chip">{chipToken(t.token)}</span></td>
                        <td className="num">{t.count.toLocaleString("en-US")}</td>
                        <td className="num">{formatNumber(t.total_activation, 3)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </section>
            </div>
            <div className="dashboard-main">
              <FeatureTestBox saeId={saeId} index={index} scale={maxAct} />
              <section className="card">
                <h2>Top activations</h2>
                {dashboard.activations.length === 0 && <p className="muted">This feature never fired on the extraction dataset.</p>}
                {dashboard.activations.filter((ex) => ex.bin_min === -1)
                  .map((ex, i) => <TokenSequence key={i} example={ex} scale={maxAct} />)}
              </section>
              {intervalGroups(dashboard.activations).map(([lo, hi, contains, group]) => (
                <section className="card" key={`${lo}-${hi}`} data-testid="interval-group">
                  <h2>Interval {fmtAct(lo)}–{fmtAct(hi)} <span className="muted">(contains {(100 * contains).toFixed(2)}%)</span></h2>
                  {group.map((ex, i) => <TokenSequence key={i} example={ex} scale={maxAct} />)}
                </section>
              ))}
              <ExplanationList saeId={saeId} index={index} explanations={dashboard.explanations} />
            </div>
          </div>
        </>
      )}
    </section>
  );
}

/** Neuronpedia-style interval groups (examples below the top group), highest interval first. */
function intervalGroups(examples: ActivationExample[]): [number, number, number, ActivationExample[]][] {
  const groups = new Map<string, [number, number, number, ActivationExample[]]>();
  for (const ex of examples) {
    const lo = ex.bin_min;
    if (lo === -1) continue;
    const key = `${lo}|${ex.bin_max}`;
    if (!groups.has(key)) groups.set(key, [lo, ex.bin_max, ex.bin_contains, []]);
    groups.get(key)![3].push(ex);
  }
  return [...groups.values()].sort((a, b) => b[0] - a[0]);
}

const fmtAct = (v: number) => v.toFixed(3);
