"""REST routes: browsing HuggingFace repositories for SAEs before downloading."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from mistudio.api.deps import get_studio
from mistudio.hub.browse import RepoListing, browse_repo
from mistudio.studio import Studio

router = APIRouter(tags=["hub"])


@router.get("/hub/saes", response_model=RepoListing)
def browse(repo_id: str = Query(..., description="owner/name"), revision: str | None = None,
           token: str | None = None, studio: Studio = Depends(get_studio)) -> RepoListing:
    """The SAEs a repository holds, with config previews, dimensions, sizes and memory estimates."""
    return browse_repo(repo_id, revision=revision, token=token or studio.settings.hf_token)
