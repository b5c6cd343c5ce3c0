"""Load test: N simulated devices at F fps for T s through mosquitto → worker(s) → Redis.

Each device is its own MQTT client (paho, its own connection) sending real encoded
float16 vectors of catalog views, stamped with the send time as the capture time, so
the latency measured (capture stamp → match record written to Redis, taken from the
records the worker publishes) is everything beyond featurizing. The workers are real
`edgelens cloud run` processes on an ANN catalog grown from real embeddings; their
/metrics give how many messages they received, matched, dropped (queue full) and
refused, so every message is accounted for: sent = received + lost before the worker,
received = matched + dropped + refused + Redis errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import redis
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import common_arguments, write_section
from loadlib import prepare_catalog, worker_env, worker_processes

from edgelens.demo.servers import MosquittoServer, RedisServer, free_port
from edgelens.featurizer.runtime import Featurizer
from edgelens.wire.features import restamp
from edgelens.wire.mqtt import connect_async, make_client
from edgelens.wire.names import features_topic

NOTIFY_PATTERN = "edgelens:notify:matches:*"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--items", type=int, default=10_000, help="catalog items")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    featurizer = Featurizer.from_models_dir(args.models_dir, "fp32", providers=["cpu"])
    devices = [f"load-{i:03d}" for i in range(args.devices)]

    results = {}
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as rds, MosquittoServer() as broker:
        data = Path(tmp)
        payloads = prepare_catalog(
            featurizer,
            items=args.items,
            queries=20 * len(devices),
            data_dir=data,
            device_ids=devices,
        )
        env = worker_env(
            data_dir=data, models_dir=args.models_dir, redis_url=rds.url, mqtt_url=broker.url
        )
        for workers in args.workers:
            results[workers] = _run(workers, env, devices, payloads, rds.url, broker.url, args)
    body = _report(results, args)
    print(body)
    if not args.no_write:
        write_section("load", body)


def _run(workers, env, devices, payloads, redis_url, mqtt_url, args) -> dict:
    ports = [free_port() for _ in range(workers)]
    envs = [{**env, "EDGELENS_WORKER__METRICS_PORT": str(port)} for port in ports]
    by_device = {
        d: [p for i, p in enumerate(payloads) if i % len(devices) == k]
        for k, d in enumerate(devices)
    }
    listener = _RecordListener(redis_url)
    clients = [_device_client(mqtt_url, device) for device in devices]
    try:
        with worker_processes(envs):
            _wait_healthy(ports)
            sent = _drive(clients, devices, by_device, args)
            time.sleep(2.0)  # the last messages drain
            counts = _worker_counts(ports)
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()
        listener.close()
    latencies = np.array(listener.latencies_ms)
    return {"sent": sent, "counts": counts, "records": len(latencies), "latency_ms": latencies}


def _device_client(mqtt_url: str, device: str):
    client = make_client(mqtt_url, client_id=f"edgelens-device-{device}")
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    connect_async(client, mqtt_url)
    if not connected.wait(10):
        raise RuntimeError(f"device {device} could not connect")
    return client


def _drive(clients, devices, by_device, args) -> int:
    """Every device sends at ``fps``, phases spread evenly, from one scheduler thread."""
    interval = 1.0 / args.fps
    offsets = [k * interval / len(devices) for k in range(len(devices))]
    frames = int(args.seconds * args.fps)
    started = time.monotonic() + 0.5
    sent = 0
    schedule = sorted(
        (started + f * interval + offsets[k], f, k)
        for f in range(frames)
        for k in range(len(devices))
    )
    for due, frame, k in schedule:
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        own = by_device[devices[k]]
        payload = restamp(own[frame % len(own)], seq=frame, captured_at=time.time())
        clients[k].publish(features_topic(devices[k]), payload, qos=0)
        sent += 1
    return sent


def _wait_healthy(ports: list[int]) -> None:
    deadline = time.monotonic() + 180
    http = httpx.Client(trust_env=False, timeout=2)
    for port in ports:
        while True:
            try:
                if http.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker on metrics port {port} never became healthy")
            time.sleep(0.2)


def _worker_counts(ports: list[int]) -> Counter:
    """Messages by outcome and refusals by reason, summed over the workers' /metrics."""
    total: Counter = Counter()
    http = httpx.Client(trust_env=False, timeout=5)
    for port in ports:
        text = http.get(f"http://127.0.0.1:{port}/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "edgelens_worker_messages_total":
                    total[sample.labels["outcome"]] += int(sample.value)
                elif sample.name == "edgelens_worker_rejected_total":
                    total[f"rejected: {sample.labels['reason']}"] += int(sample.value)
    return total


class _RecordListener:
    """Collects the latency of every match record the workers announce on Redis."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(**{NOTIFY_PATTERN: self._on_record})
        self.latencies_ms: list[float] = []
        self._thread = self._pubsub.run_in_thread(sleep_time=0.01, daemon=True)

    def _on_record(self, message: dict) -> None:
        self.latencies_ms.append(float(json.loads(message["data"])["latency_ms"]))

    def close(self) -> None:
        self._thread.stop()
        self._thread.join(5)
        self._pubsub.close()
        self._client.close()


def _report(results: dict, args) -> str:
    offered = args.devices * args.fps
    lines = [
        "## Load: simulated devices through the whole live path",
        "",
        f"{args.devices} devices (one MQTT client each) x {args.fps:g} fps = {offered:g} "
        f"messages/s for {args.seconds:g} s, float16 vectors of views of a {args.items:,}-item "
        "ANN catalog; workers are `edgelens cloud run` processes in one shared subscription. "
        "Latency: the device's send stamp (capture time of a pre-featurized frame) to the "
        "match record written to Redis, i.e. everything beyond featurizing; 2 cores shared by "
        "the devices, mosquitto, redis-server and the workers.",
        "",
        "| workers | sent | processed/s | matched | dropped (queue full) | refused "
        "| lost before a worker | unexplained | p50 ms | p99 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for workers, r in results.items():
        c = r["counts"]
        refused = sum(v for k, v in c.items() if k.startswith("rejected"))
        handled = c["matched"] + c["dropped"] + refused + c["redis_errors"] + c["errors_unexpected"]
        lost_before = r["sent"] - c["received"]
        unexplained = c["received"] - handled + max(0, c["matched"] - r["records"])
        lat = r["latency_ms"]
        p50, p99 = (np.percentile(lat, 50), np.percentile(lat, 99)) if len(lat) else (0, 0)
        lines.append(
            f"| {workers} | {r['sent']:,} | {c['matched'] / args.seconds:.0f} | {c['matched']:,} "
            f"| {c['dropped']:,} | {refused:,} | {lost_before:,} | {unexplained:,} "
            f"| {p50:.1f} | {p99:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
