"""Settings read from the environment and an optional `.env` file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """miStudio settings; every field can be set by its environment variable."""

    # only the aliases are read: with `populate_by_name` the field `home` would also read $HOME (and `device`
    # $DEVICE), so the default home would be the user's home folder itself instead of ~/.mistudio
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".mistudio", alias="MISTUDIO_HOME")
    database_url: str | None = Field(default=None, alias="MISTUDIO_DATABASE_URL")
    hf_token: str | None = Field(default=None, alias="HF_TOKEN")
    hf_endpoint: str | None = Field(default=None, alias="HF_ENDPOINT")
    hf_hub_offline: bool = Field(default=False, alias="HF_HUB_OFFLINE")
    device: str | None = Field(default=None, alias="MISTUDIO_DEVICE")
    model_memory_gb: float | None = Field(
        default=None, alias="MISTUDIO_MODEL_MEMORY_GB", gt=0,
        description="Memory (GiB) the studio's model server keeps models in before it unloads the least recently "
                    "used; default 80% of the GPU's memory, or half the RAM on a CPU")
    max_import_bytes: int = Field(default=64 * 1024**3, alias="MISTUDIO_MAX_IMPORT_BYTES")
    start_worker: bool = Field(default=True, alias="MISTUDIO_START_WORKER")
    api_token: str | None = Field(default=None, alias="MISTUDIO_API_TOKEN",
                                  description="Bearer token every /api/v1 request needs (except GET /health)")
    import_roots: str | None = Field(default=None, alias="MISTUDIO_IMPORT_ROOTS",
                                     description="Folders (os.pathsep-separated) REST imports may read from")

    @property
    def import_root_paths(self) -> list[Path]:
        """The folders `POST /api/v1/saes {"path": ...}` may import from; empty: imports from paths are refused."""
        return [Path(p).expanduser() for p in (self.import_roots or "").split(os.pathsep) if p.strip()]

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under the home folder."""
        return self.database_url or f"sqlite:///{self.home / 'mistudio.db'}"

    @property
    def saes_dir(self) -> Path:
        return self.home / "saes"

    @property
    def features_dir(self) -> Path:
        return self.home / "features"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"

    @property
    def tmp_dir(self) -> Path:
        return self.home / "tmp"

    def ensure_dirs(self) -> None:
        """Create the folders of the store if they are missing."""
        for d in (self.home, self.saes_dir, self.features_dir, self.exports_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)

    def relative_to_home(self, path: Path) -> str:
        """A path inside the store, written relative to the home folder (what the database keeps)."""
        return Path(path).resolve().relative_to(self.home.resolve()).as_posix()

    def absolute(self, relative: str) -> Path:
        """The absolute path of a store-relative path."""
        return self.home / relative


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call `reset_settings()` after changing the environment)."""
    settings = Settings()
    settings.home = settings.home.expanduser()
    if settings.hf_endpoint:
        os.environ.setdefault("HF_ENDPOINT", settings.hf_endpoint)
    return settings


def reset_settings() -> None:
    """Forget the cached settings so the next `get_settings()` re-reads the environment."""
    get_settings.cache_clear()
