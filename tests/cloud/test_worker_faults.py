"""A worker process killed mid-stream: the other worker of the shared subscription carries on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

from edgelens.demo.servers import free_port
from edgelens.samples.photos import load_photo
from edgelens.testing.live import wait_for
from edgelens.wire.features import FeatureMessage, encode
from edgelens.wire.mqtt import connect_async, make_client
from edgelens.wire.names import features_topic, matches_key

EDGELENS = Path(sys.executable).with_name("edgelens")


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_killing_one_of_two_workers_loses_at_most_the_messages_in_flight(live_settings, featurizer):
    ports = [free_port(), free_port()]
    env = {
        **os.environ,
        "EDGELENS_REDIS_URL": str(live_settings.redis_url),
        "EDGELENS_MQTT_URL": str(live_settings.mqtt_url),
        "NO_PROXY": "127.0.0.1",
    }
    workers = [
        subprocess.Popen(
            [str(EDGELENS), "cloud", "run"],
            env={**env, "EDGELENS_WORKER__METRICS_PORT": str(port)},
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    rdb = redis.Redis.from_url(str(live_settings.redis_url))
    client = make_client(str(live_settings.mqtt_url), client_id="faults-device")
    connect_async(client, str(live_settings.mqtt_url))
    vector = featurizer.embed([load_photo("coffee")])[0]
    seq = 0

    def send(device: str, count: int) -> None:
        nonlocal seq
        for _ in range(count):
            seq += 1
            message = FeatureMessage(device, seq, time.time(), featurizer.model_id, vector)
            client.publish(features_topic(device), encode(message), qos=0).wait_for_publish(5)
            time.sleep(0.02)

    try:
        wait_for(lambda: all(_healthy(port) for port in ports), timeout=60)
        send("before", 40)
        wait_for(lambda: rdb.llen(matches_key("before")) >= 38)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        # The broker sees the dead connection at once (the kernel closes its socket), so
        # the surviving worker gets the whole shared subscription.
        send("after", 40)
        wait_for(lambda: rdb.llen(matches_key("after")) >= 38, timeout=15)
        assert _healthy(ports[1]) and workers[1].poll() is None
    finally:
        client.disconnect()
        client.loop_stop()
        rdb.close()
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
            worker.wait(timeout=30)
