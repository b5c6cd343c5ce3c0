"""The JSON match record the worker pushes to Redis and the dashboard shows."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from edgelens.errors import EdgelensError


@dataclass(frozen=True)
class Match:
    """One catalog item found for a frame, best first; ``score`` is the cosine similarity.

    ``verified`` is what spatial verification found: True when the item's photo's keypoints
    are in the view (a near-duplicate's often are too, so the dashboard marks only the first
    match "exact match"), False when they were looked for and not found, None when nobody
    looked (beyond the candidates verified, verification off, or a photo too plain to tell).
    """

    item_id: str
    name: str
    price: float | None
    currency: str
    available: bool
    score: float
    verified: bool | None = None


@dataclass(frozen=True)
class MatchRecord:
    """One frame's answer. ``latency_ms`` runs from capture to the record's creation.

    ``stages_ms`` splits the path: ``transit`` (capture → worker received: featurize,
    encode, MQTT), ``queue`` (waiting for the match thread), ``decode``, ``search``.
    """

    device_id: str
    seq: int
    captured_at: float
    model_id: str
    latency_ms: float
    matches: list[Match]
    stages_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> MatchRecord:
        try:
            data = json.loads(text)
            data["matches"] = [Match(**m) for m in data["matches"]]
            return cls(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise EdgelensError(f"invalid match record: {exc}") from exc
