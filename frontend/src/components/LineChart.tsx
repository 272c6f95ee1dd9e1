/** Line plots in SVG: one or more series of (x, y) points on shared axes, with min/max tick labels. */
import { formatNumber } from "../lib/format";

export interface LineSeries {
  label: string;
  points: [number, number][];
  color?: string;
  /** Draw each point as a dot, joined by a dashed line (sparse series such as periodic evaluations). */
  dots?: boolean;
}

interface LineChartProps {
  title: string;
  series: LineSeries[];
  xLabel?: string;
  /** Plot log10(y) (every y must be positive; others are dropped). */
  logY?: boolean;
  /** Fixed y range, e.g. [0, 1] for fractions; default: the data's range. */
  yDomain?: [number, number];
  testId?: string;
}

const WIDTH = 360;
const HEIGHT = 150;
const PAD = { left: 44, right: 10, top: 8, bottom: 24 };
const COLORS = ["var(--accent)", "#d9480f", "#2f9e44", "#7b3fe4", "#c98a00"];

/** 1.2M, 350K: an axis label that stays short. */
function compact(value: number): string {
  return value.toLocaleString("en-US", { notation: "compact", maximumFractionDigits: 1 });
}

/** The finite points of a series (positive ones on a log axis), ordered by x. */
function cleanPoints(points: [number, number][], logY: boolean): [number, number][] {
  return points
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0))
    .map(([x, y]): [number, number] => [x, logY ? Math.log10(y) : y])
    .sort((a, b) => a[0] - b[0]);
}

export function LineChart({ title, series, xLabel = "tokens", logY = false, yDomain, testId }: LineChartProps) {
  const cleaned = series.map((s) => ({ ...s, points: cleanPoints(s.points, logY) })).filter((s) => s.points.length > 0);
  const all = cleaned.flatMap((s) => s.points);
  if (all.length === 0) {
    return (
      <figure className="chart" data-testid={testId}>
        <figcaption>{title}</figcaption>
        <p className="muted">No data yet.</p>
      </figure>
    );
  }
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  let [yMin, yMax] = yDomain && !logY ? yDomain : [Math.min(...ys), Math.max(...ys)];
  if (yMax - yMin < 1e-12) {
    const pad = Math.abs(yMax) > 0 ? Math.abs(yMax) * 0.05 : 1;
    yMin -= pad;
    yMax += pad;
  }
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const sx = (x: number) => PAD.left + (xMax > xMin ? ((x - xMin) / (xMax - xMin)) * innerW : innerW / 2);
  const sy = (y: number) => PAD.top + innerH - ((Math.min(Math.max(y, yMin), yMax) - yMin) / (yMax - yMin)) * innerH;
  const tick = (v: number) => (logY ? formatNumber(10 ** v, 3) : formatNumber(v, 3));
  return (
    <figure className="chart line-chart" data-testid={testId}>
      <figcaption>
        {title}{logY ? " (log scale)" : ""}
        {cleaned.length > 1 && (
          <span className="chart-legend">
            {cleaned.map((s, i) => (
              <span key={s.label} style={{ color: s.color ?? COLORS[i % COLORS.length] }}>● {s.label}</span>
            ))}
          </span>
        )}
      </figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`${title} against ${xLabel}`}
        preserveAspectRatio="none">
        <line x1={PAD.left} x2={PAD.left} y1={PAD.top} y2={PAD.top + innerH} stroke="var(--border-strong)" />
        <line x1={PAD.left} x2={WIDTH - PAD.right} y1={PAD.top + innerH} y2={PAD.top + innerH}
          stroke="var(--border-strong)" />
        <text x={PAD.left - 4} y={PAD.top + 8} textAnchor="end" className="axis-label">{tick(yMax)}</text>
        <text x={PAD.left - 4} y={PAD.top + innerH} textAnchor="end" className="axis-label">{tick(yMin)}</text>
        <text x={PAD.left} y={HEIGHT - 6} className="axis-label">{compact(xMin)}</text>
        <text x={WIDTH - PAD.right} y={HEIGHT - 6} textAnchor="end" className="axis-label">
          {compact(xMax)} {xLabel}
        </text>
        {cleaned.map((s, i) => {
          const color = s.color ?? COLORS[i % COLORS.length];
          const path = s.points.map(([x, y], j) => `${j === 0 ? "M" : "L"}${sx(x).toFixed(2)},${sy(y).toFixed(2)}`).join(" ");
          return (
            <g key={s.label} data-testid="line-series" data-label={s.label} data-points={s.points.length}>
              {s.points.length > 1 && (
                <path d={path} fill="none" stroke={color} strokeWidth={s.dots ? 1 : 1.5} vectorEffect="non-scaling-stroke"
                  strokeDasharray={s.dots ? "3 3" : undefined} />
              )}
              {(s.dots || s.points.length === 1) && s.points.map(([x, y], j) => (
                <circle key={j} cx={sx(x)} cy={sy(y)} r={2.5} fill={color}>
                  <title>{`${s.label} ${tick(y)} at ${formatNumber(x)} ${xLabel}`}</title>
                </circle>
              ))}
              <title>{`${s.label}: ${tick(s.points[s.points.length - 1][1])} at ${formatNumber(s.points[s.points.length - 1][0])} ${xLabel}`}</title>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}
