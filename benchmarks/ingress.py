"""What one received message costs the worker's network thread, by MQTT protocol version.

A worker's paho client receives every device's messages through its shared subscription,
a flood's included. A publisher in a process of its own floods 2.5 KB messages (the size of
a feature message with its vectors) through a real mosquitto to one subscriber built as the
worker builds its clients (:func:`edgelens.wire.mqtt.make_client`), speaking MQTT 5 or
3.1.1, rounds interleaved. Reported: messages received a second, and this process's CPU time
per message (the subscriber's network thread is all it runs meanwhile).

    python -m benchmarks.ingress [--seconds 10] [--rounds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt

from benchmarks.common import common_arguments, publish
from edgelens.demo.servers import MosquittoServer
from edgelens.wire.mqtt import WORKER_PROTOCOL, connect_async, make_client
from edgelens.wire.names import FEATURES_WILDCARD, features_topic, shared_subscription

PAYLOAD_BYTES = 2500
PROTOCOLS = {"MQTT 5 (before)": mqtt.MQTTv5, "MQTT 3.1.1 (the worker's now)": WORKER_PROTOCOL}
# Publishes as fast as the broker takes them, a window at a time, until killed.
FLOOD = """
import sys, time
from edgelens.wire.mqtt import make_client, connect_async
url, topic, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = make_client(url, client_id="bench-flood")
connect_async(client, url)
while not client.is_connected():
    time.sleep(0.05)
payload = bytes(size)
while True:
    for _ in range(200):
        info = client.publish(topic, payload, qos=0)
    info.wait_for_publish(5)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="each measurement")
    parser.add_argument("--rounds", type=int, default=3)
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in PROTOCOLS}
    with MosquittoServer() as broker:
        for _ in range(args.rounds):
            for name, protocol in PROTOCOLS.items():
                results[name].append(_received(broker.url, protocol, args.seconds))
    rows = [
        "| worker's protocol | messages received a second | CPU per message, us |",
        "| --- | ---: | ---: |",
    ]
    for name, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        rows.append(f"| {name} | {rate:,.0f} | {cpu:.1f} |")
    body = "\n".join(
        [
            "## The worker's network thread under a flood",
            "",
            f"A publisher in a process of its own floods {PAYLOAD_BYTES:,}-byte messages through "
            "a real mosquitto to one subscriber built as the worker builds its clients (its "
            "shared subscription), for "
            f"{args.seconds:g} s; {args.rounds} rounds interleaved, medians. CPU per message: "
            "this process's CPU time (the subscriber's network thread) over the messages it "
            "received.",
            "",
            *rows,
        ]
    )
    publish("worker-ingress", body, write=not args.no_write)


def _received(mqtt_url: str, protocol: int, seconds: float) -> tuple[float, float]:
    """Messages a second and CPU microseconds a message of one subscriber under the flood."""
    count = 0
    subscribed = threading.Event()

    def on_message(*_args) -> None:
        nonlocal count
        count += 1

    client = make_client(mqtt_url, client_id="bench-worker", protocol=protocol)
    client.on_connect = lambda c, *_: c.subscribe(shared_subscription("bench", FEATURES_WILDCARD))
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    connect_async(client, mqtt_url)
    subscribed.wait(10)
    flood = subprocess.Popen(
        [sys.executable, "-c", FLOOD, mqtt_url, features_topic("flood"), str(PAYLOAD_BYTES)]
    )
    try:
        time.sleep(2.0)  # the flood under way
        count, cpu, started = 0, time.process_time(), time.monotonic()
        time.sleep(seconds)
        received, used = count, time.process_time() - cpu
        elapsed = time.monotonic() - started
    finally:
        flood.kill()
        flood.wait()
        client.disconnect()
        client.loop_stop()
    return received / elapsed, used / max(received, 1) * 1e6


if __name__ == "__main__":
    main()
