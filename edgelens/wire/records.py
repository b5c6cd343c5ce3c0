"""The JSON match record the worker pushes to Redis and the dashboard shows, defined once:
the web app's API serves and documents these dataclasses as they are (pydantic reads the
field docstrings below into its OpenAPI schema).
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field

from pydantic import ConfigDict, with_config

from edgelens.errors import EdgelensError

# Each field's docstring is its description in the API's schema.
_DOCUMENTED = ConfigDict(use_attribute_docstrings=True)


class Stage(str, enum.Enum):
    """Which stage of the answer a record is (edgelens.cloud.answer)."""

    FIRST = "first"
    CONFIRMED = "confirmed"

    def __str__(self) -> str:  # the value, as on the wire (pages print it)
        return self.value


class Decision(str, enum.Enum):
    """What a record says of the thing in view."""

    MATCH = "match"
    NO_MATCH = "no_match"

    def __str__(self) -> str:
        return self.value


@with_config(_DOCUMENTED)
@dataclass(frozen=True)
class Match:
    """One catalog item found for a frame."""

    item_id: str
    name: str
    price: float | None
    currency: str
    available: bool
    score: float
    """Cosine similarity of the frame and the item's image."""
    verified: bool | None = None
    """Spatial verification: true when the item's photo's keypoints are in the view (a
    near-duplicate's often are too, so the dashboard marks only the first match "exact
    match"), false when they were looked for and not found, null when nobody looked (beyond
    the candidates verified, verification off, or a photo too plain to tell)."""


@with_config(_DOCUMENTED)
@dataclass(frozen=True)
class MatchRecord:
    """One frame's answer, best match first."""

    # Field order matters: records are found in Redis by their leading device id and seq
    # (record_prefix).
    device_id: str
    seq: int
    """The device's frame counter."""
    captured_at: float
    """Capture time on the device (epoch s)."""
    model_id: str
    latency_ms: float
    """End-to-end: frame capture to this record's push to Redis."""
    matches: list[Match]
    stages_ms: dict[str, float] = field(default_factory=dict)
    """The path split in stages: transit (capture to the worker: featurize, encode, MQTT),
    queue (waiting for this stage), decode, search, and focus and verify in stage two."""
    stage: Stage = Stage.FIRST
    """first: answered from the frame's vectors at once; confirmed: the same frame's answer
    after its view was featurized and verified (it replaces the first in place)."""
    decision: Decision = Decision.MATCH
    """no_match: the thing in view is not in the catalog, as far as the evidence goes; the
    matches are then only the nearest items, not an answer."""
    clear: bool = False
    """A first answer that is a match leading the next item by search.confirm_margin:
    nothing stage two could find would change it, so it is final (and called a match)."""
    corrected: bool = False
    """The view is one a person corrected on a device page, seen again: answered as they
    said (its item first, or "no match" for something not in the catalog)."""
    view: bool = False  # the view is kept a while at names.view_key
    """The frame came with its focus view, served at /devices/{device_id}/views/{seq} while
    the worker keeps it."""

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
