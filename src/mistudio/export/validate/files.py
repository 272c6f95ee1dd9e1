"""Reading an export, folder or zip, and parsing its JSON files while reporting what a parser would hide."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path
from typing import Any

from mistudio.errors import InvalidInputError
from mistudio.export.archive.checksums import staged_files
from mistudio.export.validate.report import ValidationIssue


class ExportFiles:
    """Uniform read access to an export folder or zip."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InvalidInputError(f"{path} does not exist")
        self._zip = None
        if self.path.is_file():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except zipfile.BadZipFile as exc:
                raise InvalidInputError(f"{path} is not a zip archive or export folder") from exc

    def names(self) -> list[str]:
        """Relative file paths, sorted."""
        if self._zip is not None:
            return sorted(n for n in self._zip.namelist() if not n.endswith("/"))
        return staged_files(self.path)

    def read(self, name: str) -> bytes:
        """A file's bytes."""
        return self._zip.read(name) if self._zip is not None else (self.path / name).read_bytes()

    def close(self) -> None:
        """Release the archive."""
        if self._zip is not None:
            self._zip.close()


def load_json_bytes(data: bytes, name: str) -> tuple[Any, list[ValidationIssue]]:
    """Parse (and gunzip) a file, reporting invalid UTF-8 and NaN/Infinity literals."""
    issues = []
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        issues.append(ValidationIssue("invalid_utf8", f"{name} (byte {exc.start})", "file is not valid UTF-8",
                            "decode it, replacing invalid bytes with U+FFFD", fixable=True))
        text = data.decode("utf-8", errors="replace")
    constants: list[str] = []

    def constant(token: str) -> float:
        constants.append(token)
        return float("nan")

    if name.endswith(".jsonl") or name.endswith(".jsonl.gz"):
        obj: Any = [json.loads(line, parse_constant=constant) for line in text.splitlines() if line.strip()]
    else:
        obj = json.loads(text, parse_constant=constant)
    if constants:
        issues.append(ValidationIssue("non_finite", name, f"{len(constants)} NaN/Infinity literal(s) ({constants[0]})",
                            "replace them with 0.0", fixable=True))
    return obj, issues
