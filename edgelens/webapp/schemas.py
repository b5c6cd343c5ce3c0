"""Response models of the JSON API. The wire records are served as they are defined
(edgelens.wire.records, edgelens.wire.status): their own docs describe them in OpenAPI."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PhotoOut(BaseModel):
    """One photo of a catalog item."""

    sha256: str = Field(description="The image's sha256: its id among the item's photos.")
    origin: Literal["import", "added", "correction"] = Field(
        description="import: from `edgelens catalog add` or an upload of the item (a later "
        "import replaces it); added: added one by one; correction: a device's view."
    )
    added_at: float = Field(description="When it joined the item (epoch s).")
    url: str = Field(description="Where the image is served.")


class ItemBriefOut(BaseModel):
    """An item found by a search: enough to pick it."""

    item_id: str
    name: str


class ItemOut(BaseModel):
    """A catalog item with its photos, the first its cover."""

    item_id: str
    name: str
    price: float | None
    currency: str
    available: bool
    photos: list[PhotoOut]


class ErrorOut(BaseModel):
    detail: str


# The OpenAPI description of the answer every Redis-backed endpoint may give.
REDIS_UNAVAILABLE = {503: {"model": ErrorOut, "description": "Redis is unreachable."}}
