"""The one id resolver of the command line: a full id or a unique prefix of one (as the tables print them)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute

from mistudio.db.models import ExportRecord, Extraction, Job, SAERecord, Training
from mistudio.errors import AmbiguousIdError, NotFoundError
from mistudio.studio import Studio

# what each kind of id is, the column that holds it, and the command that lists them
_KINDS: dict[str, tuple[InstrumentedAttribute[str], str]] = {
    "SAE": (SAERecord.id, "mistudio sae list"),
    "job": (Job.id, "mistudio jobs list"),
    "export": (ExportRecord.id, "mistudio exports list"),
    "extraction": (Extraction.id, "mistudio sae show"),
    "training": (Training.id, "mistudio training list"),
}
SHORT_ID = 8  # characters of an id the tables print


def resolve_id(studio: Studio, kind: str, text: str) -> str:
    """The full id of the `kind` ("SAE", "job", "export", "extraction") that `text` names: itself, or the one id
    starting with it.

    Raises:
        NotFoundError: no such id, and no id starts with `text`.
        AmbiguousIdError: several ids start with `text` (the message lists them).
    """
    column, lister = _KINDS[kind]
    text = text.strip()
    with studio.sessions() as s:
        if text and s.scalar(select(column).where(column == text)) is not None:
            return text
        matches = list(s.scalars(select(column).where(column.startswith(text, autoescape=True))
                                 .order_by(column).limit(11))) if text else []
    if not matches:
        raise NotFoundError(f"{kind} {text!r} not found; `{lister}` shows them")
    if len(matches) > 1:
        shown = ", ".join(matches[:10]) + (", …" if len(matches) > 10 else "")
        raise AmbiguousIdError(f"{kind} id prefix {text!r} is ambiguous: it matches {shown}; give more characters",
                               details={"matches": matches[:10]})
    return matches[0]


def resolve_sae(studio: Studio, text: str) -> str:
    """The full SAE id `text` names (see `resolve_id`).

    Raises:
        NotFoundError: no such SAE.
        AmbiguousIdError: several SAE ids start with `text`.
    """
    return resolve_id(studio, "SAE", text)


def short_id(full_id: str) -> str:
    """The prefix of an id that tables print."""
    return full_id[:SHORT_ID]
