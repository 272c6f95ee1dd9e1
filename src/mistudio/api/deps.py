"""FastAPI dependencies: the Studio and a database session per request; scrubbing server paths from errors."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from mistudio.db.session import transaction
from mistudio.studio import Studio


def get_studio(request: Request) -> Studio:
    """The Studio the app was created with."""
    return request.app.state.studio


def get_session(request: Request) -> Iterator[Session]:
    """A session committed at the end of the request, rolled back on error."""
    with transaction(request.app.state.studio.sessions) as session:
        yield session


def scrub_paths(value: Any, replacements: Sequence[tuple[re.Pattern[str], str]]) -> Any:
    """`value` (a string, or lists/dicts of them) with every match of each pattern replaced."""
    if isinstance(value, str):
        for pattern, replacement in replacements:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, list):
        return [scrub_paths(v, replacements) for v in value]
    if isinstance(value, dict):
        return {k: scrub_paths(v, replacements) for k, v in value.items()}
    return value


def path_pattern(path: Path | str, *, with_child: bool = False) -> re.Pattern[str]:
    """A pattern matching `path` (its resolved form too) as a prefix; `with_child` also eats the next component
    (a temp folder's random name)."""
    forms = sorted({str(path).rstrip("/"), str(Path(path).resolve()).rstrip("/")}, key=len, reverse=True)
    child = r"/[^/\s'\"]+" if with_child else ""
    return re.compile("(?:" + "|".join(re.escape(f) for f in forms) + ")" + child + r"/?")


def server_path_patterns(studio: Studio) -> list[tuple[re.Pattern[str], str]]:
    """What no API error may show: the store's temp folders (dropped, leaving the name inside) and the store
    itself (shown as `<store>/`)."""
    settings = studio.settings
    return [(path_pattern(settings.tmp_dir, with_child=True), ""), (path_pattern(settings.home), "<store>/")]
