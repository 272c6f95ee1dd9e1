"""REST routes: exports."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["exports"])
