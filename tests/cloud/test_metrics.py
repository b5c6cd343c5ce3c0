"""/metrics and /healthz of a real worker, fed through a real broker, with Redis pulled away."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from edgelens.samples.photos import load_photo
from edgelens.testing.live import send_features, wait_for
from edgelens.wire.names import features_topic, status_topic


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.Client(trust_env=False).get(f"{url}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_outcomes_and_time_searches(worker, publisher, featurizer):
    host, port = worker.metrics_address
    url = f"http://{host}:{port}"
    send_features(publisher, featurizer, load_photo("coffee"), seq=1)
    publisher.publish(features_topic("cam-1"), b"garbage").wait_for_publish(5)
    publisher.publish(
        status_topic("cam-1"), '{"state": "online", "model_id": "m"}', qos=1, retain=True
    ).wait_for_publish(5)
    wait_for(lambda: worker.stats.snapshot().get("rejected_malformed"))
    samples = wait_for(
        lambda: (s := _samples(url)).get(("edgelens_worker_devices_online", ())) == 1 and s
    )
    assert samples[("edgelens_worker_messages_total", (("outcome", "matched"),))] == 1
    assert samples[("edgelens_worker_messages_total", (("outcome", "received"),))] == 2
    assert samples[("edgelens_worker_rejected_total", (("reason", "malformed"),))] == 1
    assert samples[("edgelens_worker_search_seconds_count", ())] == 1
    assert samples[("edgelens_worker_end_to_end_seconds_count", ())] == 1
    assert samples[("edgelens_worker_queue_length", ())] == 0

    health = httpx.Client(trust_env=False).get(f"{url}/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["model_id"] == worker.model_id
    assert health.json()["catalog_items"] == len(worker.index)


def test_health_turns_503_when_redis_is_gone(worker, publisher, featurizer, redis_server):
    host, port = worker.metrics_address
    url = f"http://{host}:{port}/healthz"
    redis_server.stop()
    send_features(publisher, featurizer, load_photo("coffee"), seq=1)
    wait_for(lambda: worker.stats.snapshot().get("redis_errors"))
    answer = httpx.Client(trust_env=False).get(url)
    assert answer.status_code == 503
    assert answer.json()["redis_ok"] is False and answer.json()["status"] == "unavailable"

    redis_server.start()
    deadline = time.monotonic() + 20
    seq = 2
    while httpx.Client(trust_env=False).get(url).status_code != 200:
        assert time.monotonic() < deadline, "the worker did not recover from the Redis restart"
        send_features(publisher, featurizer, load_photo("coffee"), seq=seq)
        seq += 1
        time.sleep(0.2)
