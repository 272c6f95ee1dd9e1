"""What validation finds: one `ValidationIssue` per problem, and the `ValidationReport` of one export (the API
serves the report as it is: its computed fields are the counts and the readable text)."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, computed_field
from pydantic.dataclasses import dataclass


@dataclass(config=ConfigDict(extra="allow", json_schema_serialization_defaults_required=True))
class ValidationIssue:
    """One problem in an export: where, what, and how to fix it."""

    code: str
    location: Annotated[str, Field(description="File (and field) the issue is in")]
    message: str
    fix: Annotated[str, Field(description="How to fix it")]
    fixable: bool = Field(default=False, description="Whether `mistudio export validate --fix` can fix it")
    severity: Literal["error", "warning"] = "error"


@dataclass(config=ConfigDict(extra="allow", json_schema_serialization_defaults_required=True))
class ValidationReport:
    """The result of validating an export archive or folder."""

    path: str
    issues: list[ValidationIssue] = field(default_factory=list)
    n_files: int = 0
    n_features: int = 0

    # the counts and the text are computed fields, so the API serves them (mypy does not support a decorator
    # over @property: pydantic's documented `prop-decorator` ignore)

    @property
    def errors(self) -> list[ValidationIssue]:
        """Issues with severity error."""
        return [i for i in self.issues if i.severity == "error"]

    @computed_field(description="No errors (warnings allowed)")  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors

    @computed_field  # type: ignore[prop-decorator]
    @property
    def n_errors(self) -> int:
        """Issues with severity error."""
        return len(self.errors)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def n_warnings(self) -> int:
        """Issues with severity warning."""
        return len(self.issues) - len(self.errors)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def n_fixable(self) -> int:
        """Issues `--fix` can repair."""
        return sum(i.fixable for i in self.issues)

    @computed_field(description="The report as readable text")  # type: ignore[prop-decorator]
    @property
    def text(self) -> str:
        """The report as readable text."""
        return self.to_text()

    def to_dict(self) -> dict[str, Any]:
        """JSON report (what `mistudio export validate --json` prints): every field but the text."""
        return _REPORT.dump_python(self, exclude={"text"})

    def to_text(self) -> str:
        """A readable report."""
        head = (f"{self.path}: {'OK' if self.ok else 'INVALID'} — {self.n_files} files, {self.n_features} features, "
                f"{self.n_errors} error(s), {self.n_warnings} warning(s)")
        lines = [head]
        for i in self.issues:
            lines.append(f"  [{i.severity}] {i.code} at {i.location}: {i.message}\n      fix: {i.fix}"
                         + (" (auto-fixable with --fix)" if i.fixable else ""))
        return "\n".join(lines)


_REPORT = TypeAdapter(ValidationReport)
