"""The shape every paged listing shares (catalog, features, exports): items, total count, page, page size."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """One page of a listing; subclasses name the item type and add what their listing also returns."""

    items: list[ItemT]
    total: int = Field(description="Items matching the filters, over all pages")
    page: int = Field(description="The page number, from 1")
    page_size: int
