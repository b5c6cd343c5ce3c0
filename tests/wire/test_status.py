"""A device's status, defined once: what a real device publishes passes, hostile values do
not, neither in the worker's model nor in the dashboard's."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import ValidationError

from edgelens.device.publisher import FeaturePublisher
from edgelens.testing.statuses import GOOD, HOSTILE, device_stats
from edgelens.wire.features import WireDtype
from edgelens.wire.status import DeviceStatus, RecordedStatus


def _publisher() -> FeaturePublisher:
    """A real device's publisher (never connected), to build statuses with."""
    return FeaturePublisher(
        mqtt_url="mqtt://127.0.0.1:1",
        device_id="cam-1",
        model_id="mobilenetv3-fp32-0123456789ab",
        provider="CPUExecutionProvider",
        wire_dtype=WireDtype.FLOAT16,
        reconnect_initial_s=0.5,
        reconnect_max_s=1.0,
    )


@pytest.mark.parametrize("state", ["online", "offline"])
def test_what_a_real_device_publishes_is_a_status(state):
    publisher = _publisher()
    assert DeviceStatus.model_validate_json(publisher._status(state)).state == state
    publisher.update_health(device_stats().health(), publish=False)
    raw = publisher._status(state)
    status = DeviceStatus.model_validate_json(raw)
    assert status.views_sent == 12_345 and status.fps == 14.93 and status.wire_dtype == "float16"
    assert status.sends_views is True
    assert set(json.loads(raw)) <= set(DeviceStatus.model_fields), "every key is a known one"
    publisher.update_health(device_stats(fps=0.0).health(), publish=False)  # before any frame
    DeviceStatus.model_validate_json(publisher._status(state))


@pytest.mark.parametrize("status", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_statuses_are_refused(status):
    with pytest.raises(ValidationError):
        DeviceStatus.model_validate_json(json.dumps(status))
    with pytest.raises(ValidationError):
        RecordedStatus.model_validate_json(json.dumps({**status, "seen_at": time.time()}))


@pytest.mark.parametrize("raw", [b"[]", b'"online"', b"null", b"{", b"\xff\xfe", b"{}"])
def test_what_is_no_json_object_is_refused(raw):
    with pytest.raises(ValidationError):
        DeviceStatus.model_validate_json(raw)


def test_the_dashboard_reads_what_the_worker_writes():
    written = {**GOOD, "device_id": "cam-1", "seen_at": time.time()}
    device = RecordedStatus.model_validate_json(json.dumps(written))
    assert (device.device_id, device.state, device.fps) == ("cam-1", "online", 14.5)
    for broken in ({**written, "seen_at": float("inf")}, {**written, "device_id": None}):
        with pytest.raises(ValidationError):
            RecordedStatus.model_validate_json(json.dumps(broken))
    no_id = {k: v for k, v in written.items() if k != "device_id"}
    with pytest.raises(ValidationError):
        RecordedStatus.model_validate_json(json.dumps(no_id))
