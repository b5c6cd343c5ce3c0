"""The JSON match record the worker pushes to Redis and the dashboard shows."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field

from edgelens.errors import EdgelensError


class Stage(str, enum.Enum):
    """Which stage of the answer a record is (:mod:`edgelens.cloud.answer`)."""

    FIRST = "first"
    CONFIRMED = "confirmed"


class Decision(str, enum.Enum):
    """What a record says of the thing in view."""

    MATCH = "match"
    NO_MATCH = "no_match"


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
    """One frame's answer. ``latency_ms`` runs from capture to this record's push to Redis.

    ``stage`` is ``"first"`` (answered from the vectors at once) or ``"confirmed"`` (stage
    two: the same frame's answer after its view was featurized and verified; it replaces
    the first in place). ``decision`` is ``"match"`` or ``"no_match"`` (the thing in view is
    not in the catalog, as far as the evidence goes). ``stages_ms`` splits the path:
    ``transit`` (capture → worker received: featurize, encode, MQTT), ``queue`` (waiting
    for this stage), ``decode``, ``search``, and ``focus`` and ``verify`` in stage two.
    Field order matters: records are found in Redis by their leading device id and seq
    (:func:`record_prefix`).
    """

    device_id: str
    seq: int
    captured_at: float
    model_id: str
    latency_ms: float
    matches: list[Match]
    stages_ms: dict[str, float] = field(default_factory=dict)
    stage: Stage = Stage.FIRST
    decision: Decision = Decision.MATCH
    view: bool = False  # the frame came with its focus view: kept at names.view_key a while

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> MatchRecord:
        try:
            data = json.loads(text)
            data["matches"] = [Match(**m) for m in data["matches"]]
            data["stage"] = Stage(data.get("stage", Stage.FIRST))
            data["decision"] = Decision(data.get("decision", Decision.MATCH))
            return cls(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise EdgelensError(f"invalid match record: {exc}") from exc


def record_prefix(device_id: str, seq: int) -> str:
    """How every JSON record of ``device_id``'s frame ``seq`` begins (what Redis's
    replace-in-place script looks for)."""
    return json.dumps({"device_id": device_id, "seq": seq}, separators=(",", ":"))[:-1] + ","
