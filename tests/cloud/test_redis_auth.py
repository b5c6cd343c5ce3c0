"""Redis with a password, as production runs it: the worker authenticates, or says why not."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
import redis
from pydantic import AnyUrl

from edgelens.cloud.worker import Worker
from edgelens.demo.servers import RedisServer
from edgelens.samples.photos import load_photo
from edgelens.testing.live import send_features, wait_for
from edgelens.wire.mqtt import connect_async, make_client
from edgelens.wire.names import matches_key

PASSWORD = "s3cret/pass word"


@pytest.fixture
def protected_redis() -> Iterator[RedisServer]:
    with RedisServer(password=PASSWORD) as server:
        yield server


@pytest.fixture
def start_worker(sample_settings, featurizer, mosquitto_server):
    """``start_worker(redis_url)``: a running worker on the sample catalog, and a device."""
    settings = sample_settings
    device = make_client(mosquitto_server.url, client_id="auth-device")
    connected = threading.Event()
    device.on_connect = lambda *args: connected.set()
    connect_async(device, mosquitto_server.url)
    assert connected.wait(10)
    workers: list[Worker] = []

    def start(redis_url: str) -> Worker:
        live = settings.model_copy(
            update={"redis_url": AnyUrl(redis_url), "mqtt_url": AnyUrl(mosquitto_server.url)}
        )
        worker = Worker(live)
        worker.start()
        workers.append(worker)
        wait_for(worker.subscribed.is_set)
        send_features(device, featurizer, load_photo("coffee"), device="auth-cam")
        return worker

    yield start
    for worker in workers:
        worker.stop()
    device.disconnect()
    device.loop_stop()


def test_redis_refuses_clients_without_the_password(protected_redis):
    anonymous = redis.Redis(host="127.0.0.1", port=protected_redis.port)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()


def test_worker_with_the_password_pushes_matches(protected_redis, start_worker):
    start_worker(protected_redis.url)
    rdb = redis.Redis.from_url(protected_redis.url)
    wait_for(lambda: rdb.llen(matches_key("auth-cam")) == 1)
    rdb.close()


def test_worker_with_a_wrong_password_counts_it_and_reports_unhealthy(
    protected_redis, start_worker
):
    worker = start_worker(protected_redis.url.replace("s3cret", "wrong"))
    wait_for(lambda: worker.stats.snapshot().get("redis_errors"))
    host, port = worker.metrics_address
    health = httpx.Client(trust_env=False).get(f"http://{host}:{port}/healthz")
    assert health.status_code == 503 and health.json()["redis_ok"] is False
