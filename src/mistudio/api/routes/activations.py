"""REST routes: an SAE's live activations on a text, and the models the studio's model server holds."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from mistudio.api.deps import get_studio
from mistudio.inference.model_server import model_server
from mistudio.inference.sae_session import MAX_FEATURES, MAX_TOP_K, open_sae
from mistudio.inference.schemas import LiveActivations, ResidentList
from mistudio.studio import Studio

router = APIRouter(tags=["inference"])


class ActivationsRequest(BaseModel):
    text: str = Field(min_length=1, description="The text to run the model and the SAE on.")
    features: list[int] | None = Field(None, max_length=MAX_FEATURES,
                                       description="Features whose activation at every token is returned.")
    top_k: int = Field(10, ge=1, le=MAX_TOP_K, description="Features listed per token and overall.")
    model: str | None = Field(None, description="HF model id or local folder; default: the model of the SAE's "
                                                "latest extraction, else the SAE's own.")


@router.post("/saes/{sae_id}/activations", response_model=LiveActivations)
def activations(sae_id: str, body: ActivationsRequest, studio: Studio = Depends(get_studio)) -> LiveActivations:
    """The SAE's activations on `text`, computed as its extraction computes them (same hook, weight processing,
    normalisation and BOS): the requested features at every token, the top features per token and overall."""
    live = open_sae(studio, sae_id, model=body.model)
    return live.activations(body.text, body.features, body.top_k)


@router.get("/models/loaded", response_model=ResidentList)
def loaded_models(studio: Studio = Depends(get_studio)) -> ResidentList:
    """The models (and prepared SAEs) the model server holds or is loading, with their memory and state."""
    return model_server(studio).listing()
