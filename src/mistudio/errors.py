"""The exceptions every layer raises; the API maps them to HTTP codes and the CLI to one-line errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class MiStudioError(Exception):
    """Base class: `str(err)` is a message a person can act on."""

    http_status = 400

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFoundError(MiStudioError):
    http_status = 404


class ConflictError(MiStudioError):
    http_status = 409


class AuthenticationError(MiStudioError):
    """The request carries no valid API token (`MISTUDIO_API_TOKEN`)."""

    http_status = 401


class ForbiddenError(MiStudioError):
    """The server refuses the request whoever asks (e.g. an import path outside MISTUDIO_IMPORT_ROOTS)."""

    http_status = 403


class InvalidInputError(MiStudioError):
    http_status = 422


class UnknownFormatError(InvalidInputError):
    """No reader recognised the files."""


class CorruptFileError(InvalidInputError):
    """A file is truncated or unreadable."""


class AmbiguousIdError(InvalidInputError):
    """An id prefix matches several rows; `details["matches"]` lists their full ids."""


class AmbiguousSAEError(InvalidInputError):
    """A folder holds several SAEs; `details["candidates"]` lists their sub-folders, `candidates` the detected
    SAEs (each with a `root` folder)."""

    def __init__(self, root: Path, candidates: Sequence[Any]) -> None:
        paths = [getattr(c, "path", c.root) for c in candidates]  # an SAE may be one file of a folder
        names = [str(p.relative_to(root)) if p != root else "." for p in paths]
        super().__init__(
            f"{root} holds {len(candidates)} SAEs; pick one of its sub-folders or files: {', '.join(names)}",
            details={"candidates": names},
        )
        self.candidates = list(candidates)


class HubError(MiStudioError):
    """The HuggingFace Hub answered with an error (unknown repo, revision, auth)."""

    http_status = 404


class HubAuthError(HubError):
    http_status = 401


class HubUnreachableError(HubError):
    http_status = 502


class ExportValidationError(InvalidInputError):
    """The staged export failed its checks; `details["issues"]` lists them."""


class NeuronpediaUploadError(MiStudioError):
    """Neuronpedia refused a request; the message says which and why."""

    http_status = 502


class AutoInterpError(MiStudioError):
    """An auto-interp run could not talk to its language-model endpoint."""

    http_status = 502


class EndpointUnreachableError(AutoInterpError):
    """The OpenAI-compatible endpoint did not answer (refused, reset, timed out, or kept failing with 429/5xx)."""

    http_status = 502


class EndpointAuthError(AutoInterpError):
    """The endpoint refused the API key (401/403)."""

    http_status = 401


class EndpointResponseError(AutoInterpError):
    """The endpoint answered something that is not a usable chat completion."""

    http_status = 502


class JobCancelled(MiStudioError):
    """Raised inside a job when the user cancelled it."""

    http_status = 409


class JobPaused(Exception):
    """Raised inside a job at a check point when the user asked to pause; the job can be resumed."""
