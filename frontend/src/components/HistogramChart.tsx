/** A bar chart of a histogram in SVG; optional log-scaled counts. */
import { formatNumber } from "../lib/format";
import type { Histogram } from "../api/types";

interface HistogramChartProps {
  histogram: Histogram | null | undefined;
  title: string;
  color?: string;
  logScale?: boolean;
  testId?: string;
}

const WIDTH = 360;
const HEIGHT = 140;
const PAD = { left: 8, right: 8, top: 8, bottom: 22 };

export function HistogramChart({ histogram, title, color = "var(--accent)", logScale, testId }: HistogramChartProps) {
  if (!histogram || histogram.counts.length === 0) {
    return (
      <figure className="chart" data-testid={testId}>
        <figcaption>{title}</figcaption>
        <p className="muted">No histogram data.</p>
      </figure>
    );
  }
  const { counts, bin_edges: edges } = histogram;
  const useLog = logScale ?? histogram.log_scale ?? false;
  const scale = (c: number) => (useLog ? Math.log10(1 + c) : c);
  const top = Math.max(...counts.map(scale), 1e-9);
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const barW = innerW / counts.length;
  return (
    <figure className="chart" data-testid={testId}>
      <figcaption>{title}{useLog ? " (log counts)" : ""}</figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={title} preserveAspectRatio="none">
        {counts.map((c, i) => {
          const h = (scale(c) / top) * innerH;
          return (
            <rect key={i} x={PAD.left + i * barW} y={PAD.top + innerH - h} width={Math.max(barW - 1, 0.5)}
              height={h} fill={color}>
              <title>{`${formatNumber(edges[i])} – ${formatNumber(edges[i + 1])}: ${c.toLocaleString("en-US")}`}</title>
            </rect>
          );
        })}
        <line x1={PAD.left} x2={WIDTH - PAD.right} y1={PAD.top + innerH} y2={PAD.top + innerH}
          stroke="var(--border-strong)" />
        <text x={PAD.left} y={HEIGHT - 6} className="axis-label">{formatNumber(edges[0])}</text>
        <text x={WIDTH - PAD.right} y={HEIGHT - 6} textAnchor="end" className="axis-label">
          {formatNumber(edges[edges.length - 1])}
        </text>
      </svg>
    </figure>
  );
}
