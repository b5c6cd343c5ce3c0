"""Response models of the JSON API; they document the wire records for OpenAPI clients."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from edgelens.wire.features import MAX_CAPTURED_AT
from edgelens.wire.status import DeviceId, DeviceStatus


class DeviceOut(DeviceStatus):
    """A device's last known status as the worker wrote it: the device's own status, checked
    as the worker checks it (an entry that is not one is skipped), with the id of the
    device whose topic it came on and when the worker saw it."""

    device_id: DeviceId
    seen_at: float | None = Field(
        default=None,
        ge=0,
        lt=MAX_CAPTURED_AT,
        description="When the worker received the status (epoch s, the worker's clock).",
    )


class MatchOut(BaseModel):
    item_id: str
    name: str
    price: float | None
    currency: str
    available: bool
    score: float = Field(description="Cosine similarity of the frame and the item's image.")
    verified: bool | None = Field(
        default=None,
        description="Spatial verification: true when the item's photo's keypoints are in the "
        "view (a near-duplicate's may be too), false when looked for and not found, null when "
        "not looked for.",
    )


class MatchRecordOut(BaseModel):
    """One frame's answer, best match first."""

    device_id: str
    seq: int = Field(description="The device's frame counter.")
    captured_at: float = Field(description="Capture time on the device (epoch s).")
    model_id: str
    latency_ms: float = Field(
        description="End-to-end: frame capture to this record's push to Redis."
    )
    matches: list[MatchOut]
    stages_ms: dict[str, float] = Field(default_factory=dict)
    stage: Literal["first", "confirmed"] = Field(
        default="first",
        description="first: answered from the frame's vectors at once; confirmed: the same "
        "frame's answer after its view was featurized and verified (it replaces the first).",
    )
    decision: Literal["match", "no_match"] = Field(
        default="match",
        description="no_match: the thing in view is not in the catalog, as far as the "
        "evidence goes; the matches are then only the nearest items, not an answer.",
    )
    view: bool = Field(
        default=False,
        description="The frame came with its focus view, served at "
        "/devices/{device_id}/views/{seq} while the worker keeps it.",
    )


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
