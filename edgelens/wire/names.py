"""Every MQTT topic, Redis key and Redis channel, named in one place (see docs/architecture.md)."""

from __future__ import annotations

import re

TOPIC_ROOT = "edgelens"
# A device id is used inside topics and Redis keys, so wildcards and separators are refused;
# matched whole (\Z: a trailing newline is not allowed, as ``$`` would).
DEVICE_ID_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def valid_device_id(device_id: str) -> bool:
    return isinstance(device_id, str) and bool(DEVICE_ID_PATTERN.match(device_id))


def features_topic(device_id: str) -> str:
    """Where a device publishes its encoded vectors (QoS 0, not retained)."""
    return f"{TOPIC_ROOT}/{device_id}/features"


def status_topic(device_id: str) -> str:
    """The device's retained JSON status; the broker publishes 'offline' as its last will."""
    return f"{TOPIC_ROOT}/{device_id}/status"


def model_topic(device_id: str) -> str:
    """Retained :class:`edgelens.wire.rollout.ModelOffer`: the model this one device is to
    run (overrides the fleet's)."""
    return f"{TOPIC_ROOT}/{device_id}/model"


# Retained ModelOffer: the model every device is to run. "_fleet" is no device id (an id
# starts with a letter or digit), so no device's topics can be mistaken for it.
FLEET_MODEL_TOPIC = f"{TOPIC_ROOT}/_fleet/model"
FEATURES_WILDCARD = f"{TOPIC_ROOT}/+/features"
STATUS_WILDCARD = f"{TOPIC_ROOT}/+/status"
# A worker reads statuses on a connection of its own, so a device flooding statuses fills
# that connection's queue at the broker and never the one its frames arrive on. Under
# mosquitto's use_username_as_clientid each connection needs an account of its own: the
# worker's name with this suffix, same password (edgelens.broker.accounts).
STATUS_ACCOUNT_SUFFIX = ".status"


def shared_subscription(group: str, topic: str) -> str:
    """A shared subscription: the broker gives each message to one worker of the group."""
    return f"$share/{group}/{topic}"


def device_of_topic(topic: str) -> str | None:
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != TOPIC_ROOT or not valid_device_id(parts[1]):
        return None
    return parts[1]


def matches_key(device_id: str) -> str:
    """Redis list of JSON match records, newest first (LPUSH + LTRIM: a LIFO)."""
    return f"edgelens:matches:{device_id}"


def matches_channel(device_id: str) -> str:
    """Redis pub/sub channel announcing each new match record (payload: the record's JSON)."""
    return f"edgelens:notify:matches:{device_id}"


def view_key(device_id: str, seq: int) -> str:
    """Redis string: the focus view JPEG frame ``seq`` of the device came with, as sent;
    expires after ``worker.views_kept_s``."""
    return f"edgelens:view:{device_id}:{seq}"


def view_vectors_key(device_id: str, seq: int) -> str:
    """Redis string: the vectors frame ``seq`` of the device came with, as a feature
    message without its view (the wire format, float16), kept beside its view
    (:func:`view_key`) for as long: a correction of the frame keeps both for the workers
    to remember."""
    return f"edgelens:view-vectors:{device_id}:{seq}"


def views_kept_key(device_id: str) -> str:
    """Redis list: the view and view-vectors keys (:func:`view_key`,
    :func:`view_vectors_key`) of the device's newest frames that came with a view, newest
    first; the keys past ``2 * worker.matches_kept`` of them are deleted, so a device
    keeps the views of that many frames at most, however many it sends."""
    return f"edgelens:views-kept:{device_id}"


DEVICES_KEY = "edgelens:devices"  # Redis hash: device id → JSON device status
DEVICES_CHANNEL = "edgelens:notify:devices"  # pub/sub: a device's status changed (payload: JSON)
CATALOG_CHANNEL = "edgelens:notify:catalog"  # pub/sub: the catalog changed (payload: change seq)
# Redis hash: the model rollout under way (edgelens.wire.rollout.Rollout's fields).
ROLLOUT_KEY = "edgelens:rollout"


def index_writer_key(shared_index: str) -> str:
    """Redis lease naming the one worker that writes a shared index (a Milvus collection);
    the value is the holder's token, the key expires unless renewed."""
    return f"edgelens:index-writer:{shared_index}"


def index_seq_key(shared_index: str) -> str:
    """Redis integer: the catalog change a shared index reflects, written by its writer."""
    return f"edgelens:index-seq:{shared_index}"
