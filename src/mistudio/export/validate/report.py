"""What validation finds: one `Issue` per problem, and the `ValidationReport` of one export."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Issue:
    """One problem: where, what, how to fix it, and whether `--fix` can."""

    code: str
    location: str
    message: str
    fix: str
    fixable: bool = False
    severity: str = "error"

    def to_dict(self) -> dict[str, Any]:
        """JSON view."""
        return asdict(self)


@dataclass
class ValidationReport:
    """All issues found in one export."""

    path: str
    issues: list[Issue] = field(default_factory=list)
    n_files: int = 0
    n_features: int = 0

    @property
    def errors(self) -> list[Issue]:
        """Issues with severity error."""
        return [i for i in self.issues if i.severity == "error"]

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON report."""
        return {"path": self.path, "ok": self.ok, "n_files": self.n_files, "n_features": self.n_features,
                "n_errors": len(self.errors), "n_warnings": len(self.issues) - len(self.errors),
                "n_fixable": sum(i.fixable for i in self.issues), "issues": [i.to_dict() for i in self.issues]}

    def to_text(self) -> str:
        """A readable report."""
        head = (f"{self.path}: {'OK' if self.ok else 'INVALID'} — {self.n_files} files, {self.n_features} features, "
                f"{len(self.errors)} error(s), {len(self.issues) - len(self.errors)} warning(s)")
        lines = [head]
        for i in self.issues:
            lines.append(f"  [{i.severity}] {i.code} at {i.location}: {i.message}\n      fix: {i.fix}"
                         + (" (auto-fixable with --fix)" if i.fixable else ""))
        return "\n".join(lines)
