/** An export validation report: pass/fail, counts, and each issue with where it is and how to fix it. */
import type { ValidationIssue, ValidationReport } from "../api/types";

export function ValidationReportView({ report, title }: { report: ValidationReport; title: string }) {
  const errors = report.issues.filter((i) => i.severity === "error");
  const warnings = report.issues.filter((i) => i.severity !== "error");
  const row = (i: ValidationIssue, k: number) => (
    <li key={k}>
      <strong>{i.code}</strong> at <span className="mono">{i.location}</span>: {i.message}
      {i.fix && <div className="muted">Fix: {i.fix}{i.fixable ? " (auto-fixable with `mistudio export validate --fix`)" : ""}</div>}
    </li>
  );
  return (
    <div className={`validation ${report.ok ? "ok" : "bad"}`} data-testid="validation-report" role="status">
      <strong>{title}: {report.ok ? "✓ valid" : "✗ problems found"}</strong>
      <span className="muted">
        {typeof report.n_features === "number" ? ` · ${report.n_features.toLocaleString("en-US")} features` : ""}
        {typeof report.n_files === "number" ? ` · ${report.n_files.toLocaleString("en-US")} files` : ""}
        {` · ${errors.length} error${errors.length === 1 ? "" : "s"}, ${warnings.length} warning${warnings.length === 1 ? "" : "s"}`}
      </span>
      {errors.length > 0 && <ul className="errors">{errors.slice(0, 50).map(row)}</ul>}
      {warnings.length > 0 && <ul className="warnings">{warnings.slice(0, 50).map(row)}</ul>}
    </div>
  );
}
