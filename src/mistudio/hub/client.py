"""Hub connection settings (endpoint, token, offline mode) and huggingface_hub errors → mistudio errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers

from mistudio.errors import HubAuthError, HubError, HubUnreachableError
from mistudio.settings import get_settings

AUTH_ADVICE = "needs a token: set HF_TOKEN or pass --token"


@dataclass(frozen=True)
class HubConnection:
    """Where and as whom to talk to the Hub."""

    endpoint: str
    token: str | None

    @property
    def api(self) -> HfApi:
        """An `HfApi` bound to this endpoint and token."""
        return HfApi(endpoint=self.endpoint, token=self.token)

    def headers(self) -> dict[str, str]:
        """HTTP headers (user agent, Authorization) for direct requests."""
        return build_hf_headers(token=self.token)

    def file_url(self, repo_id: str, filename: str, revision: str) -> str:
        """The `resolve` URL of one file at one revision."""
        from huggingface_hub import hf_hub_url

        return hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)


@dataclass(frozen=True)
class RepoCommit:
    """A repo resolved to one commit: its sha and the size in bytes of every file there."""

    sha: str
    sizes: dict[str, int]


def resolve_commit(conn: HubConnection, repo_id: str, revision: str | None) -> RepoCommit:
    """Resolve `revision` (default branch if None) of model repo `repo_id` to a commit and list its files.

    Raises:
        HubError: the repo or revision is not found, or the Hub names no commit for it.
        HubAuthError: the repo is gated or private and the token does not give access.
        HubUnreachableError: the Hub cannot be reached.
    """
    with hub_errors(conn, repo_id, revision):
        info = conn.api.model_info(repo_id, revision=revision, files_metadata=True)
    if info.sha is None:
        raise HubError(f"the Hub at {conn.endpoint} named no commit for {repo_id!r} at revision {revision!r}")
    return RepoCommit(sha=info.sha, sizes={s.rfilename: int(s.size or 0) for s in info.siblings or []})


def connect(endpoint: str | None = None, token: str | None = None) -> HubConnection:
    """Resolve endpoint and token from the arguments, then settings (HF_ENDPOINT, HF_TOKEN); refuse offline mode."""
    settings = get_settings()
    if settings.hf_hub_offline or constants.is_offline_mode():
        raise HubUnreachableError(
            "HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset HF_HUB_OFFLINE to browse or download, "
            "or import SAE files from a local folder instead"
        )
    endpoint = (endpoint or settings.hf_endpoint or constants.ENDPOINT).rstrip("/")
    return HubConnection(endpoint=endpoint, token=token or settings.hf_token or None)


@contextlib.contextmanager
def hub_errors(conn: HubConnection, repo_id: str, revision: str | None = None) -> Iterator[None]:
    """Translate huggingface_hub / network exceptions raised inside the block into mistudio errors."""
    where = f"{repo_id!r} on {conn.endpoint}"
    try:
        yield
    except GatedRepoError as exc:
        raise HubAuthError(f"repository {where} is gated and {AUTH_ADVICE} (after accepting its terms)") from exc
    except RepositoryNotFoundError as exc:
        if exc.response is not None and exc.response.status_code == 401:
            msg = (f"repository {where} was refused with 401: if it exists it is private and "
                   + ("the token given has no access to it" if conn.token else AUTH_ADVICE))
            raise HubAuthError(msg) from exc
        raise HubError(f"repository {repo_id!r} not found on {conn.endpoint}; check the id") from exc
    except RevisionNotFoundError as exc:
        raise HubError(f"revision {revision!r} not found in repository {where}; check the branch, tag or "
                       "commit sha") from exc
    except LocalEntryNotFoundError as exc:
        raise HubUnreachableError(f"cannot reach the Hub at {conn.endpoint} to fetch files of {repo_id!r}; "
                                  "check your network, proxy or HF_ENDPOINT") from exc
    except EntryNotFoundError as exc:
        raise HubError(f"a file was not found in repository {where} at revision {revision!r}: {exc}") from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise HubAuthError(f"access to {where} was refused ({status}): {AUTH_ADVICE}") from exc
        raise HubUnreachableError(f"the Hub at {conn.endpoint} answered an error for {repo_id!r}: "
                                  f"{str(exc).splitlines()[0]}; try again later") from exc
    except OfflineModeIsEnabled as exc:
        raise HubUnreachableError("HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it and retry") from exc
    except (httpx2.TransportError, ConnectionError) as exc:
        raise HubUnreachableError(f"cannot reach the Hub at {conn.endpoint} ({type(exc).__name__}: {exc}); "
                                  "check your network, proxy or HF_ENDPOINT") from exc
