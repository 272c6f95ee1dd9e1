"""REST routes: browsing HuggingFace repositories and SAELens releases for SAEs before downloading."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from mistudio.api.deps import get_studio
from mistudio.catalog import service
from mistudio.catalog.schemas import DownloadStarted
from mistudio.hub.browse import RepoListing, browse_repo
from mistudio.hub.releases import ReleaseListing, ReleaseSearch, browse_release, search_releases
from mistudio.saes.registry import Release, get_registry
from mistudio.studio import Studio

router = APIRouter(tags=["hub"])


class ReleaseDownloadRequest(BaseModel):
    sae_id: str = Field(description="The SAE id inside the release, e.g. blocks.8.hook_resid_pre")
    revision: str | None = None
    token: str | None = Field(None, description="HuggingFace token for gated/private repositories.")
    name: str | None = None


@router.get("/hub/saes", response_model=RepoListing)
def browse(repo_id: str = Query(..., description="owner/name"), revision: str | None = None,
           token: str | None = None, studio: Studio = Depends(get_studio)) -> RepoListing:
    """The SAEs a repository holds, with config previews, dimensions, sizes and memory estimates."""
    return browse_repo(repo_id, revision=revision, token=token or studio.settings.hf_token)


@router.get("/hub/releases", response_model=ReleaseSearch)
def releases(query: str | None = Query(None, description="Words to find in names, repos, models, families"),
             repo_id: str | None = Query(None, description="Only the releases of this repository"),
             limit: int = Query(50, ge=1, le=1000)) -> ReleaseSearch:
    """Search the SAELens releases (the registry of pretrained SAEs), best matches first."""
    return search_releases(query, repo_id=repo_id, limit=limit)


@router.get("/hub/releases/{release}", response_model=Release)
def release_info(release: str) -> Release:
    """One release as the registry lists it (its SAEs with L0, Neuronpedia ids), without reading the Hub."""
    return get_registry().release(release)


@router.get("/hub/releases/{release}/saes", response_model=ReleaseListing)
def release_saes(release: str, revision: str | None = None, token: str | None = None,
                 studio: Studio = Depends(get_studio)) -> ReleaseListing:
    """A release's SAEs with the registry's data merged with what their files on the Hub say."""
    return browse_release(release, revision=revision, token=token or studio.settings.hf_token)


@router.post("/hub/releases/{release}/download", status_code=202, response_model=DownloadStarted)
def download_release_sae(release: str, body: ReleaseDownloadRequest,
                         studio: Studio = Depends(get_studio)) -> DownloadStarted:
    """Start downloading one SAE of a release (the registry's config overrides and ids are recorded)."""
    started = service.start_release_download(studio, release, body.sae_id, revision=body.revision,
                                             token=body.token, name=body.name)
    studio.runner.enqueue(started.job_id)
    return started
