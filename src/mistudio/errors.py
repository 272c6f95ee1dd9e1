"""The exceptions every layer raises; the API maps them to HTTP codes and the CLI to one-line errors."""

from __future__ import annotations


class MiStudioError(Exception):
    """Base class: `str(err)` is a message a person can act on."""

    http_status = 400

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFoundError(MiStudioError):
    http_status = 404


class ConflictError(MiStudioError):
    http_status = 409


class InvalidInputError(MiStudioError):
    http_status = 422


class UnknownFormatError(InvalidInputError):
    """No reader recognised the files."""


class CorruptFileError(InvalidInputError):
    """A file is truncated or unreadable."""


class HubError(MiStudioError):
    """The HuggingFace Hub answered with an error (unknown repo, revision, auth)."""

    http_status = 404


class HubAuthError(HubError):
    http_status = 401


class HubUnreachableError(HubError):
    http_status = 502


class JobCancelled(MiStudioError):
    """Raised inside a job when the user cancelled it."""

    http_status = 409
