"""The device side of live tests against a real worker: waiting, sending a frame's vector,
reading the records, adding a sample photo to the catalog, a worker that always confirms."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import cv2

from edgelens.catalog.ingest import add_items
from edgelens.catalog.models import ItemSource
from edgelens.samples.photos import load_photo
from edgelens.wire.features import FeatureMessage, WireDtype, encode
from edgelens.wire.names import features_topic, matches_key
from edgelens.wire.records import MatchRecord


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


def send_features(
    client,
    featurizer,
    image,
    *,
    device="cam-1",
    seq=1,
    model_id=None,
    dtype=WireDtype.FLOAT16,
    focus_image=None,
    view_jpeg=None,
):
    message = FeatureMessage(
        device_id=device,
        seq=seq,
        captured_at=time.time(),
        model_id=model_id or featurizer.model_id,
        embedding=featurizer.embed([image])[0],
        focus_embedding=None if focus_image is None else featurizer.embed([focus_image])[0],
        view_jpeg=view_jpeg,
    )
    client.publish(features_topic(device), encode(message, dtype), qos=0).wait_for_publish(5)


def records(rdb, device="cam-1") -> list[MatchRecord]:
    return [MatchRecord.from_json(raw) for raw in rdb.lrange(matches_key(device), 0, -1)]


def add_photo_item(store, featurizer, settings, tmp_path, item_id, photo, *, recipe, **meta):
    """Add one sample photo as catalog item ``item_id``, as `edgelens catalog add` would."""
    path = tmp_path / f"{item_id}.png"
    cv2.imwrite(str(path), load_photo(photo))
    add_items(
        store=store,
        featurizer=featurizer,
        recipe=recipe,
        images_dir=settings.images_dir,
        sources=[ItemSource(item_id, (path,), **meta)],
    )


def always_confirming(settings):
    """``settings`` whose first answers are never final: every view goes to stage two."""
    return settings.model_copy(
        update={"search": settings.search.model_copy(update={"confirm_margin": 2.0})}
    )


class MqttRecorder:
    """A plain paho client that records every message on one topic filter (a test's ear
    on the broker); publishes too."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[mqtt.MQTTMessage] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda client, userdata, message: self.messages.append(message)
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        if not subscribed.wait(5):
            raise TimeoutError(f"no subscription to {topic}")

    def payloads(self, topic: str) -> list[bytes]:
        """What came on ``topic``, oldest first."""
        return [m.payload for m in list(self.messages) if m.topic == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
