/** A fixed-size progress bar with its percentage (no layout shift as the value changes). */
interface ProgressBarProps {
  value: number | null | undefined;
  label: string;
  small?: boolean;
}

export function ProgressBar({ value, label, small }: ProgressBarProps) {
  const pct = Math.round(Math.max(0, Math.min(1, value ?? 0)) * 100);
  return (
    <div className={`progress${small ? " progress-small" : ""}`}>
      <div className="progress-track" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100}
        aria-valuenow={pct}>
        <div className="progress-fill" style={{ width: `${pct}%` }} />
      </div>
      <span className="progress-pct">{pct}%</span>
    </div>
  );
}
