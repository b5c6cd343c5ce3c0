"""A device's retained status, defined once: what a device publishes on
``edgelens/<device>/status`` and the worker accepts (:class:`DeviceStatus`), and what the
worker writes to Redis and the dashboard reads back and serves (:class:`RecordedStatus`).

A status comes from a device, so every field is hostile until checked: known keys only,
exact JSON types (no "14.5" for a number, no true for a count), finite numbers in
plausible ranges and short strings. A number the dashboard cannot show (1e308, NaN) or a
10,000-character model id is refused here rather than stored and shown.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from edgelens.settings import WireDtypeName
from edgelens.wire.features import MAX_CAPTURED_AT
from edgelens.wire.names import valid_device_id

# Counters stay exact in JSON and in the dashboard's JavaScript numbers (2^53).
MAX_COUNT = 2**53
# A stage time longer than an hour is no measurement.
MAX_STAGE_MS = 3_600_000.0
MAX_FPS = 1000.0
MAX_CAMERA_CHARS = 200
MAX_MODEL_ID_CHARS = 255  # a feature message's model id is at most 255 bytes too
MAX_PROVIDER_CHARS = 64


def _device_id(value: str) -> str:
    if not valid_device_id(value):
        raise ValueError("not a device id (letters, digits, '_', '.', '-'; at most 64)")
    return value


# The id a device goes by in topics and Redis keys (edgelens.wire.names).
DeviceId = Annotated[str, AfterValidator(_device_id)]
DeviceState = Literal["online", "offline"]


def _count(description: str) -> Any:
    return Field(default=None, ge=0, le=MAX_COUNT, description=description)


def _stage_ms(description: str) -> Any:
    return Field(default=None, ge=0, le=MAX_STAGE_MS, description=description)


class DeviceStatus(BaseModel):
    """The keys a device's status may carry (edgelens.device.publisher with the loop's
    DeviceStats.health figures); every one but ``state`` may be absent."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    state: DeviceState
    device_id: DeviceId | None = Field(default=None, description="The device's id.")
    model_id: str | None = Field(default=None, max_length=MAX_MODEL_ID_CHARS)
    model_problem: str | None = Field(
        default=None,
        max_length=MAX_CAMERA_CHARS,
        description="Why the device still runs model_id and not the model it was offered, "
        'in plain words (e.g. "download failed: sha256 differs from the manifest"); absent '
        "when it runs what it was offered.",
    )
    provider: str | None = Field(default=None, max_length=MAX_PROVIDER_CHARS)
    wire_dtype: WireDtypeName | None = None
    sends_views: bool | None = Field(
        default=None,
        description="Whether the device sends its focus view once a view settles "
        "(device.send_view); false: its answers come from vectors alone, are never "
        "confirmed, and its page has no picture to show.",
    )
    camera: str | None = Field(
        default=None,
        max_length=MAX_CAMERA_CHARS,
        description="What the device says of its camera when it cannot read frames, in "
        'plain words (e.g. "camera can\'t open 0: retrying"); absent while frames come.',
    )
    # Any time a clock can say, as a frame's capture time: a device without a real-time
    # clock may be at 1970 until it syncs, and its status still says it is online.
    ts: float | None = Field(
        default=None,
        ge=0,
        lt=MAX_CAPTURED_AT,
        description="When the device wrote the status (epoch s, the device's clock).",
    )
    fps: float | None = Field(
        default=None, ge=0, le=MAX_FPS, description="Frames featurized per second."
    )
    featurize_ms: float | None = _stage_ms("Mean model time per frame.")
    preprocess_ms: float | None = _stage_ms("Mean resize and normalisation time per frame.")
    decode_ms: float | None = _stage_ms("Mean time the source took to read a frame.")
    publish_ms: float | None = _stage_ms("Mean smoothing, gating, encoding and hand-over time.")
    focus_ms: float | None = _stage_ms("Mean time of a focus box, per one made.")
    captured: int | None = _count("Frames read from the source.")
    dropped: int | None = _count("Frames the model could not keep up with.")
    published: int | None = _count("Frames handed to the broker.")
    suppressed: int | None = _count("Vectors not sent: same view.")
    views_sent: int | None = _count("Messages that carried a focus view.")
    unsent: int | None = _count("Frames dropped while the broker was unreachable.")


class RecordedStatus(DeviceStatus):
    """A device's last known status as the worker recorded it: the device's own status,
    checked as the worker checks it (an entry that is not one is skipped), with the id of
    the device whose topic it came on and when the worker saw it."""

    device_id: DeviceId
    seen_at: float | None = Field(
        default=None,
        ge=0,
        lt=MAX_CAPTURED_AT,
        description="When the worker received the status (epoch s, the worker's clock).",
    )
