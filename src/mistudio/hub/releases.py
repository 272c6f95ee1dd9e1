"""Browse SAELens releases: a release's SAEs with the registry's data merged with what their files say.

A release names one Hub repo and, for each SAE, its path there (a folder, a file or a file stem). The repo is
browsed with `hub.browse.browse_repo` (only under the folder all the release's paths share, so a release of a
big repo does not read every header of it) and each registry SAE is matched to the SAE found at its path.
"""

from __future__ import annotations

import posixpath
from typing import Any

from pydantic import BaseModel, Field

from mistudio.hub.browse import HubSAE, RepoListing, browse_repo
from mistudio.saes.registry import Registry, RegistrySAE, Release, ReleaseSummary, get_registry

__all__ = ["RegistryMatch", "ReleaseListing", "ReleaseSAE", "ReleaseSearch", "browse_release", "match_listing",
           "registry_matches", "resolve_release_sae", "search_releases"]


class ReleaseSearch(BaseModel):
    """Releases matching a search, best first."""

    items: list[ReleaseSummary]
    total: int = Field(description="How many releases matched (items may be fewer, up to the limit)")
    sae_lens_version: str = Field(description="The sae-lens version whose registry was searched")


def search_releases(query: str | None = None, *, repo_id: str | None = None, limit: int | None = None,
                    registry: Registry | None = None) -> ReleaseSearch:
    """Releases whose name, repo, model or family contain every word of `query`; `repo_id` keeps only the
    releases of that repo."""
    registry = registry or get_registry()
    found = registry.search(query)
    if repo_id:
        found = [r for r in found if r.repo_id.lower() == repo_id.lower()]
    return ReleaseSearch(items=found[:limit] if limit is not None else found, total=len(found),
                         sae_lens_version=registry.sae_lens_version)


class ReleaseSAE(BaseModel):
    """One SAE of a release: the registry's data, and the SAE found at its path in the repo (None: not there)."""

    id: str = Field(description="The SAE id inside its release")
    path: str = Field(description="Where the registry says the SAE lives in the repo")
    l0: float | None = None
    variance_explained: float | None = None
    neuronpedia: str | None = Field(None, description="Neuronpedia id")
    norm_scaling_factor: float | None = None
    hub: HubSAE | None = Field(None, description="What the files say (config, shapes, sizes); None when the repo "
                                                 "holds no SAE at `path` at this commit")


class ReleaseListing(BaseModel):
    """A release browsed at one commit of its repo."""

    name: str
    repo_id: str
    model: str
    conversion_func: str | None = None
    family: str
    config_overrides: dict[str, Any] = Field(default_factory=dict)
    links: dict[str, str] = Field(default_factory=dict)
    sae_lens_version: str = Field(description="The sae-lens version whose registry listed the release")
    endpoint: str
    revision: str | None = None
    commit_sha: str
    saes: list[ReleaseSAE]


def _common_folder(paths: list[str]) -> str:
    """The deepest folder holding every path (`""` for the repo root)."""
    folders = [posixpath.dirname(p.strip("/")) for p in paths]
    return posixpath.commonpath(folders) if folders and all(folders) else ""


def _find_hub_sae(path: str, by_path: dict[str, HubSAE], by_file: dict[str, HubSAE]) -> HubSAE | None:
    """The browsed SAE a registry path names: the same path, the SAE one of whose files it is, or its stem."""
    path = path.strip("/")
    if path in by_path:
        return by_path[path]
    if path in by_file:
        return by_file[path]
    stem, ext = posixpath.splitext(path)
    if ext and stem in by_path:
        return by_path[stem]
    return None


def match_listing(release: Release, listing: RepoListing) -> list[ReleaseSAE]:
    """The release's SAEs, each with the browsed SAE at its path (or None)."""
    by_path = {entry.path: entry for entry in listing.saes}
    by_file = {f.path: entry for entry in listing.saes for f in entry.files}
    return [ReleaseSAE(id=sae.id, path=sae.path, l0=sae.l0, variance_explained=sae.variance_explained,
                       neuronpedia=sae.neuronpedia, norm_scaling_factor=sae.norm_scaling_factor,
                       hub=_find_hub_sae(sae.path, by_path, by_file))
            for sae in release.saes]


class RegistryMatch(BaseModel):
    """The release SAE that a browsed SAE of a plain repo is (what the registry adds to a repo browse)."""

    release: str
    sae_id: str
    l0: float | None = None
    variance_explained: float | None = None
    neuronpedia: str | None = None


def registry_matches(listing: RepoListing, registry: Registry | None = None) -> dict[str, RegistryMatch]:
    """Browsed SAE path → the release SAE at that path, for every release of the listing's repo.

    When several releases list the same SAE (a canonical release beside the full one) the one with a Neuronpedia
    id wins, then the first in the registry."""
    registry = registry or get_registry()
    matches: dict[str, RegistryMatch] = {}
    for release in registry.releases_for_repo(listing.repo_id):
        for entry in match_listing(release, listing):
            if entry.hub is None:
                continue
            known = matches.get(entry.hub.path)
            if known is None or (known.neuronpedia is None and entry.neuronpedia is not None):
                matches[entry.hub.path] = RegistryMatch(release=release.name, sae_id=entry.id, l0=entry.l0,
                                                        variance_explained=entry.variance_explained,
                                                        neuronpedia=entry.neuronpedia)
    return matches


def browse_release(name: str, revision: str | None = None, token: str | None = None, *,
                   endpoint: str | None = None, registry: Registry | None = None) -> ReleaseListing:
    """The SAEs of SAELens release `name` with their registry data and what their files say.

    Raises:
        NotFoundError: no release is called `name`.
        HubError: the release's repo or the revision is not on the Hub.
        HubAuthError: the repo is gated or private and the token gives no access.
        HubUnreachableError: the Hub cannot be reached.
    """
    registry = registry or get_registry()
    release = registry.release(name)
    prefix = _common_folder([s.path for s in release.saes])
    listing = browse_repo(release.repo_id, revision=revision, token=token, endpoint=endpoint,
                          path_prefix=prefix or None)
    return ReleaseListing(
        name=release.name, repo_id=release.repo_id, model=release.model, conversion_func=release.conversion_func,
        family=release.family, config_overrides=release.config_overrides, links=release.links,
        sae_lens_version=registry.sae_lens_version, endpoint=listing.endpoint, revision=revision,
        commit_sha=listing.commit_sha, saes=match_listing(release, listing),
    )


def resolve_release_sae(name: str, sae_id: str,
                        registry: Registry | None = None) -> tuple[Release, RegistrySAE, dict[str, Any]]:
    """The release, its SAE `sae_id`, and the registry data a download of it records.

    Raises:
        NotFoundError: no release is called `name`, or it has no SAE `sae_id`.
    """
    registry = registry or get_registry()
    release = registry.release(name)
    sae = release.sae(sae_id)
    return release, sae, registry.registry_data(release, sae)
