"""One device cannot take the worker down, through real mosquitto and redis-server: hostile
statuses are refused, a status flood costs a few Redis writes and loses no other device's
frame, a device over its share is refused while another is answered, bomb views are
dropped unread, and a real device's own status is recorded."""

from __future__ import annotations

import json
import logging
import time

import pytest

from edgelens.cloud.transport import MAX_STATUS_BYTES
from edgelens.cloud.worker import Worker
from edgelens.device.publisher import FeaturePublisher
from edgelens.featurizer.focus import focus_view_jpeg
from edgelens.samples.photos import load_photo
from edgelens.testing.bombs import bomb_view
from edgelens.testing.live import wait_for
from edgelens.testing.statuses import GOOD, HOSTILE, device_stats
from edgelens.wire.features import MAX_JPEG_BYTES, FeatureMessage, WireDtype, encode
from edgelens.wire.names import (
    DEVICES_KEY,
    features_topic,
    matches_key,
    status_topic,
    view_key,
    views_kept_key,
)
from edgelens.wire.records import MatchRecord
from edgelens.wire.status import RecordedStatus


def _publish_status(publisher, device: str, payload: bytes | str, qos: int = 1) -> None:
    publisher.publish(status_topic(device), payload, qos=qos).wait_for_publish(5)


def test_hostile_statuses_are_refused_and_the_worker_keeps_running(worker, publisher, rdb, caplog):
    caplog.set_level(logging.WARNING, logger="edgelens.cloud.worker")
    hostile = [  # each as device bad-<i> sends it, on its own topic
        json.dumps(status if name == "bad device id" else {**status, "device_id": f"bad-{i}"})
        for i, (name, status) in enumerate(HOSTILE.items())
    ]
    hostile += [
        json.dumps({**GOOD, "device_id": "someone-else"}),  # another device's id
        json.dumps({**GOOD, "model_id": "m" * MAX_STATUS_BYTES}),  # refused unread
        b"\xff{not json",
        "[1, 2]",
    ]
    for i, payload in enumerate(hostile):
        _publish_status(publisher, f"bad-{i}", payload)
    _publish_status(publisher, "good", json.dumps({**GOOD, "device_id": "good"}))
    raw = wait_for(lambda: rdb.hget(DEVICES_KEY, "good"))
    stats = worker.stats.snapshot()
    assert stats["rejected_bad_status"] == len(hostile)
    assert list(rdb.hkeys(DEVICES_KEY)) == [b"good"]
    assert RecordedStatus.model_validate_json(raw).state == "online"
    assert "errors_unexpected" not in stats and worker.health()[0]
    refusals = [r.getMessage() for r in caplog.records if "refused the status" in r.getMessage()]
    # Said once per interval (the reject log), with the topic and the reason: a field
    # out of range, or the size of one refused unread, whichever came first.
    assert refusals and refusals[0].startswith("refused the status on edgelens/bad-"), refusals
    assert "Input should be" in refusals[0] or "bytes (at most" in refusals[0], refusals


def test_a_status_flood_costs_a_few_redis_writes_and_loses_no_frame(
    worker, publisher, rdb, featurizer
):
    vector = featurizer.embed([load_photo("coffee")])[0]
    flood = 3000
    for count in range(1, flood + 2):
        status = json.dumps({**GOOD, "device_id": "flood", "published": count})
        if count <= flood:
            publisher.publish(status_topic("flood"), status, qos=0)
        else:  # the last one acknowledged: every earlier one reached the broker before
            _publish_status(publisher, "flood", status)
        if count % 1000 == 0:  # another device's frames, amid the flood
            message = FeatureMessage("quiet", count, time.time(), featurizer.model_id, vector)
            publisher.publish(features_topic("quiet"), encode(message), qos=0)
    wait_for(lambda: json.loads(rdb.hget(DEVICES_KEY, "flood") or "{}").get("published") == count)
    # Statuses go their own way (their own connection and thread): every frame answered.
    wait_for(lambda: rdb.llen(matches_key("quiet")) == flood // 1000)
    stats = worker.stats.snapshot()
    assert stats.get("status_coalesced", 0) > flood / 2, stats
    assert stats["status_recorded"] < flood / 10, stats
    assert "rejected_bad_status" not in stats


@pytest.fixture
def strict_worker(live_settings):
    """A worker that gives each device 1 message a second, 3 at once."""
    cfg = live_settings.worker.model_copy(
        update={"device_messages_per_s": 1.0, "device_message_burst": 3}
    )
    w = Worker(live_settings.model_copy(update={"worker": cfg}))
    w.start()
    wait_for(w.subscribed.is_set)
    yield w
    w.stop()


def test_a_device_over_its_share_is_refused_while_another_is_answered(
    strict_worker, publisher, rdb, featurizer
):
    vector = featurizer.embed([load_photo("coffee")])[0]
    now = time.time()

    def send(device: str, seq: int) -> None:
        message = FeatureMessage(device, seq, now + seq / 1000, featurizer.model_id, vector)
        payload = encode(message, WireDtype.FLOAT16)
        publisher.publish(features_topic(device), payload).wait_for_publish(5)

    for seq in range(1, 21):
        send("flood", seq)
    send("quiet", 1)
    send("quiet", 2)
    wait_for(lambda: rdb.llen(matches_key("quiet")) == 2)
    stats = wait_for(
        lambda: (
            (s := strict_worker.stats.snapshot()).get("matched", 0)
            + s.get("rejected_rate_limited", 0)
            == 22
            and s
        )
    )
    flood_answered = rdb.llen(matches_key("flood"))
    assert 3 <= flood_answered <= 4, "its burst, and at most one refill"
    assert stats["rejected_rate_limited"] == 20 - flood_answered


def test_bomb_views_are_answered_without_them_and_never_kept(worker, publisher, rdb, featurizer):
    """Frames with a view claiming 8000x8000 px: answered from their vectors, the view
    dropped from its header before anything decodes or keeps it; another device's real
    view is kept."""
    vector = featurizer.embed([load_photo("coffee")])[0]
    real_view = focus_view_jpeg(load_photo("coffee"), MAX_JPEG_BYTES)

    def send(device: str, seq: int, view: bytes) -> None:
        message = FeatureMessage(
            device, seq, time.time(), featurizer.model_id, vector, view_jpeg=view
        )
        payload = encode(message, WireDtype.FLOAT16)
        publisher.publish(features_topic(device), payload).wait_for_publish(5)

    for seq in range(1, 11):
        send("bomber", seq, bomb_view())
    send("quiet", 1, real_view)
    stats = wait_for(
        lambda: (s := worker.stats.snapshot()).get("matched", 0) + s.get("dropped", 0) == 11 and s
    )  # a device's burst may be thinned to its newest frames (dropped): never a quiet one's
    answered = rdb.llen(matches_key("bomber"))
    assert answered and stats["view_refused"] == answered, stats
    assert rdb.llen(matches_key("quiet")) == 1 and "confirm_unusable_view" not in stats, stats
    assert not rdb.keys(view_key("bomber", "*")) and not rdb.exists(views_kept_key("bomber"))
    assert rdb.get(view_key("quiet", 1)) == real_view
    newest = MatchRecord.from_json(rdb.lindex(matches_key("bomber"), 0))
    assert newest.matches[0].item_id == "coffee" and not newest.view


def test_a_real_devices_status_is_recorded_as_it_changes(worker, live_settings, rdb):
    device = FeaturePublisher(
        mqtt_url=str(live_settings.mqtt_url),
        device_id="real-cam",
        model_id=worker.model_id,
        provider="CPUExecutionProvider",
        wire_dtype=WireDtype.FLOAT16,
        reconnect_initial_s=0.2,
        reconnect_max_s=1.0,
    )

    def recorded() -> RecordedStatus | None:
        raw = rdb.hget(DEVICES_KEY, "real-cam")
        return RecordedStatus.model_validate_json(raw) if raw else None

    device.start()
    try:
        assert device.wait_connected(10)
        assert wait_for(recorded).state == "online"
        device.update_health(device_stats().health())
        status = wait_for(lambda: (s := recorded()) and s.views_sent == 12_345 and s)
        assert status.seen_at is not None and status.fps == 14.93
    finally:
        device.close()
    wait_for(lambda: recorded().state == "offline")
    assert "rejected_bad_status" not in worker.stats.snapshot()
