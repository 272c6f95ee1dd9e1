/**
 * A training run's curves and evaluations as plots: loss, MSE, L0, explained variance and dead fraction against
 * tokens; the held-out evaluations (CE loss recovered, KL divergence, CE losses, explained variance, L0, dead and
 * dense fractions) and the feature-density histogram. Polls the curves while `live`.
 */
import { useEffect } from "react";
import type { EvalPoint, TrainingCurvesData } from "../api/types";
import { formatNumber, formatPercent } from "../lib/format";
import { trainingActions, useCurves, useCurvesError } from "../stores/trainingStore";
import { ErrorMessage } from "./ErrorMessage";
import { HistogramChart } from "./HistogramChart";
import { LineChart, type LineSeries } from "./LineChart";

const POLL_MS = 2000;

type StepKey = "loss" | "mse" | "l0" | "explained_variance" | "dead_fraction";
type EvalKey = "explained_variance" | "l0" | "mse" | "dead_fraction" | "dense_fraction" | "ce_loss_recovered"
  | "kl_div" | "ce_loss_clean" | "ce_loss_sae" | "ce_loss_zero";

function stepSeries(curves: TrainingCurvesData, key: StepKey, label: string): LineSeries {
  return { label, points: curves.steps.map((s) => [s.tokens, s[key] ?? NaN]) };
}

function evalSeries(evals: EvalPoint[], key: EvalKey, label: string, color?: string): LineSeries {
  return { label, dots: true, color, points: evals.map((e) => [e.tokens, e[key] ?? NaN]) };
}

/** The last evaluation's headline numbers. */
function EvalSummary({ last }: { last: EvalPoint }) {
  const rows: [string, string][] = [
    ["CE loss recovered", formatPercent(last.ce_loss_recovered, 1)],
    ["KL divergence", formatNumber(last.kl_div, 4)],
    ["explained variance", formatPercent(last.explained_variance, 1)],
    ["L0", formatNumber(last.l0, 1)],
    ["MSE", formatNumber(last.mse, 4)],
    ["dead fraction", formatPercent(last.dead_fraction, 1)],
    ["dense fraction", formatPercent(last.dense_fraction, 1)],
  ];
  return (
    <dl className="metric-tiles" data-testid="eval-summary">
      {rows.map(([label, value]) => (
        <div key={label} className="metric-tile"><dt>{label}</dt><dd data-metric={label}>{value}</dd></div>
      ))}
      <div className="metric-tile"><dt>at tokens</dt><dd>{formatNumber(last.tokens)}</dd></div>
    </dl>
  );
}

export function TrainingCurves({ trainingId, live = false, title = "Training curves" }: {
  trainingId: string; live?: boolean; title?: string;
}) {
  const curves = useCurves(trainingId);
  const error = useCurvesError(trainingId);
  useEffect(() => {
    void trainingActions.loadCurves(trainingId);
    if (!live) return;
    const timer = setInterval(() => void trainingActions.loadCurves(trainingId), POLL_MS);
    return () => clearInterval(timer);
  }, [trainingId, live]);

  if (!curves) {
    return (
      <section className="card training-curves" data-testid="training-curves">
        <h2>{title}</h2>
        {error ? <ErrorMessage message={error} /> : <p className="muted">Loading…</p>}
      </section>
    );
  }
  const evals = curves.evals ?? [];
  const last = evals[evals.length - 1];
  const density = curves.density_histogram;
  return (
    <section className="card training-curves" data-testid="training-curves" aria-label={title}>
      <h2>{title}</h2>
      <ErrorMessage message={error} />
      <div className="chart-grid">
        <LineChart title="Loss" series={[stepSeries(curves, "loss", "loss")]} logY testId="curve-loss" />
        <LineChart title="MSE" series={[stepSeries(curves, "mse", "MSE")]} logY testId="curve-mse" />
        <LineChart title="L0 (active latents per token)"
          series={[stepSeries(curves, "l0", "train"), evalSeries(evals, "l0", "held-out", "#d9480f")]} testId="curve-l0" />
        <LineChart title="Explained variance" yDomain={[0, 1]}
          series={[stepSeries(curves, "explained_variance", "train"),
            evalSeries(evals, "explained_variance", "held-out", "#d9480f")]} testId="curve-ev" />
        <LineChart title="Dead fraction" yDomain={[0, 1]}
          series={[stepSeries(curves, "dead_fraction", "train"),
            evalSeries(evals, "dead_fraction", "held-out", "#d9480f")]} testId="curve-dead" />
      </div>
      <h3>Held-out evaluation</h3>
      {last ? (
        <>
          <EvalSummary last={last} />
          <div className="chart-grid">
            <LineChart title="CE loss recovered" yDomain={[0, 1]}
              series={[evalSeries(evals, "ce_loss_recovered", "CE loss recovered")]} testId="eval-ce-recovered" />
            <LineChart title="KL divergence (clean ‖ with SAE)" series={[evalSeries(evals, "kl_div", "KL")]}
              testId="eval-kl" />
            <LineChart title="CE loss" testId="eval-ce"
              series={[evalSeries(evals, "ce_loss_clean", "clean", "#2f9e44"),
                evalSeries(evals, "ce_loss_sae", "with SAE", "var(--accent)"),
                evalSeries(evals, "ce_loss_zero", "zero-ablated", "#d9480f")]} />
            <LineChart title="Dense fraction (fire on > 10% of tokens)" yDomain={[0, 1]}
              series={[evalSeries(evals, "dense_fraction", "dense")]} testId="eval-dense" />
            <HistogramChart testId="density-histogram" title="Feature density (log10 of firing fraction)"
              histogram={density ? { bin_edges: density.edges, counts: density.counts } : null} logScale={false} />
          </div>
        </>
      ) : <p className="muted">No evaluation yet: it runs periodically and at the end of training.</p>}
    </section>
  );
}
