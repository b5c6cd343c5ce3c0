"""Response models of the JSON API; they document the wire records for OpenAPI clients."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DeviceOut(BaseModel):
    """A device's last known status as the worker wrote it.

    Fields beyond these (the worker may add counters) are passed through unchanged.
    """

    model_config = ConfigDict(extra="allow")

    device_id: str
    state: Literal["online", "offline"]
    model_id: str | None = None
    provider: str | None = None
    ts: float | None = Field(default=None, description="When the status was written (epoch s).")
    fps: float | None = Field(default=None, description="Frames featurized per second.")
    featurize_ms: float | None = Field(default=None, description="Mean model time per frame.")
    dropped: int | None = Field(
        default=None, description="Frames the model could not keep up with."
    )
    suppressed: int | None = Field(default=None, description="Vectors not sent: same view.")


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


class ErrorOut(BaseModel):
    detail: str


# The OpenAPI description of the answer every Redis-backed endpoint may give.
REDIS_UNAVAILABLE = {503: {"model": ErrorOut, "description": "Redis is unreachable."}}
