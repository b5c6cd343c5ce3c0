"""A running worker on the sample catalog, and an MQTT client playing a device."""

from __future__ import annotations

import threading

import pytest
import redis

from edgelens.cloud.worker import Worker
from edgelens.testing.live import always_confirming, wait_for
from edgelens.wire.mqtt import connect_async, make_client


@pytest.fixture
def worker(live_settings):
    w = Worker(live_settings)
    w.start()
    wait_for(w.subscribed.is_set)
    yield w
    w.stop()


@pytest.fixture
def confirming_worker(live_settings):
    """A worker whose every view goes to stage two (its first answers are never final)."""
    w = Worker(always_confirming(live_settings))
    w.start()
    wait_for(w.subscribed.is_set)
    yield w
    w.stop()


@pytest.fixture
def publisher(live_settings):
    client = make_client(str(live_settings.mqtt_url), client_id="test-device")
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    connect_async(client, str(live_settings.mqtt_url))
    assert connected.wait(10)
    yield client
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def rdb(live_settings):
    client = redis.Redis.from_url(str(live_settings.redis_url))
    yield client
    client.close()
