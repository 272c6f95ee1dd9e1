"""miStudio: sparse-autoencoder management, feature dashboards and Neuronpedia export.

Notebook use::

    from mistudio import Studio, load_sae, browse_repo
    sae = load_sae("path/to/sae_folder")            # any supported format
    studio = Studio.open()                           # the catalog under MISTUDIO_HOME
    sae = load_sae("3f2c...", studio=studio)         # a catalogued SAE by id
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mistudio.saes.model import SAE
    from mistudio.studio import Studio

__all__ = ["SAE", "SAEConfig", "Studio", "__version__", "browse_repo", "download_sae", "load_sae", "read_sae"]


def load_sae(path_or_id: str, *, studio: Studio | None = None, device: str = "cpu", dtype: Any = None) -> SAE:
    """Load an SAE from a folder in any supported format, or a catalogued SAE by id."""
    from pathlib import Path

    if Path(path_or_id).expanduser().exists():
        from mistudio.saes.formats import read_sae

        return read_sae(Path(path_or_id).expanduser(), device=device, dtype=dtype)
    from mistudio.catalog.service import load_sae_for
    from mistudio.studio import Studio

    return load_sae_for(studio or Studio.open(), path_or_id, device=device, dtype=dtype)


def __getattr__(name: str) -> Any:
    """Lazy re-exports, so `import mistudio` stays light."""
    if name in ("SAE", "SAEConfig"):
        from mistudio.saes import model

        return getattr(model, name)
    if name == "Studio":
        from mistudio.studio import Studio

        return Studio
    if name == "read_sae":
        from mistudio.saes.formats import read_sae

        return read_sae
    if name == "browse_repo":
        from mistudio.hub.browse import browse_repo

        return browse_repo
    if name == "download_sae":
        from mistudio.hub.download import download_sae

        return download_sae
    raise AttributeError(f"module 'mistudio' has no attribute {name!r}")
