"""Load test: N simulated devices at F fps for T s through mosquitto → worker(s) → Redis.

Each device is its own MQTT client (paho, its own connection) sending real encoded
vectors of catalog views (the device's wire dtype), stamped with the send time as the
capture time, so the latency measured (capture stamp → match record written to Redis, taken
from the records the worker publishes) is everything beyond featurizing. The workers are real
`edgelens cloud run` processes on an ANN catalog grown from real embeddings; their
/metrics give how many messages they received, matched, dropped (queue full) and
refused, so every message is accounted for: sent = received + lost before the worker,
received = matched + dropped + refused + Redis errors.

Traffic as devices send it: every message the vector, and a share of them (the frames on
which a view settled) the focus view too, a real JPEG of a camera view of a sample photo;
the catalog items have real keypoints (those photos', in turn), so stage two featurizes
and verifies as it does in the product. Runs: vectors alone, then each view share; the
worker held to one core (taskset) unless told otherwise. Stage two's outcomes and its
backlog (sampled from /metrics every 0.2 s) are reported beside the first answers.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import redis
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import common_arguments, p50_p99, publish
from benchmarks.workers import (
    WIRE,
    prepare_catalog,
    resident_bytes,
    wait_healthy,
    worker_env,
    worker_processes,
)
from edgelens.demo.servers import MosquittoServer, RedisServer, free_port
from edgelens.featurizer.focus import focus_view_jpeg
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import SAMPLE_PHOTOS, load_photo
from edgelens.samples.views import camera_views
from edgelens.settings import VIEW_BYTES
from edgelens.wire.features import restamp, with_view_jpeg
from edgelens.wire.mqtt import connect_async, make_client
from edgelens.wire.names import features_topic

NOTIFY_PATTERN = "edgelens:notify:matches:*"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=60)
    parser.add_argument("--fps", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--items", type=int, default=10_000, help="catalog items")
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument(
        "--view-shares",
        type=float,
        nargs="+",
        default=[0.0, 0.1, 0.3],
        help="shares of messages that carry a view (device bench: panning 0.09, hand-held "
        "0.31 with the gate on)",
    )
    parser.add_argument(
        "--cores", type=int, nargs="*", default=[1], help="CPU cores the workers may use"
    )
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    featurizer = Featurizer.from_models_dir(args.models_dir, "fp32", providers=["cpu"])
    devices = [f"load-{i:03d}" for i in range(args.devices)]

    results = {}
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as rds, MosquittoServer() as broker:
        data = Path(tmp)
        photos = [load_photo(photo.loader) for photo in SAMPLE_PHOTOS]
        payloads = prepare_catalog(
            featurizer,
            items=args.items,
            queries=20 * len(devices),
            data_dir=data,
            device_ids=devices,
            photos=photos,
        )
        views = [
            focus_view_jpeg(view, VIEW_BYTES)
            for n, photo in enumerate(photos)
            for view in camera_views(photo, 2, seed=n)
        ]
        env = worker_env(
            data_dir=data, models_dir=args.models_dir, redis_url=rds.url, mqtt_url=broker.url
        )
        for workers in args.workers:
            for share in args.view_shares:
                results[workers, share] = _run(
                    workers, env, devices, payloads, views, share, rds.url, broker.url, args
                )
    body = _report(results, args, view_kb=sum(map(len, views)) / len(views) / 1024)
    publish("load", body, write=not args.no_write)


def _run(workers, env, devices, payloads, views, share, redis_url, mqtt_url, args) -> dict:
    ports = [free_port() for _ in range(workers)]
    envs = [{**env, "EDGELENS_WORKER__METRICS_PORT": str(port)} for port in ports]
    by_device = {
        d: [p for i, p in enumerate(payloads) if i % len(devices) == k]
        for k, d in enumerate(devices)
    }
    listener = _RecordListener(redis_url)
    clients = [_device_client(mqtt_url, device) for device in devices]
    try:
        with worker_processes(envs, cores=args.cores) as procs:
            wait_healthy(ports)
            backlog = _BacklogSampler(ports)
            sent, with_view = _drive(clients, devices, by_device, views, share, args)
            time.sleep(2.0)  # the last messages drain
            backlog.stop()
            counts = _worker_counts(ports)
            resident_mb = sum(resident_bytes(proc.pid) for proc in procs) / 2**20
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()
        listener.close()
    return {
        "sent": sent,
        "with_view": with_view,
        "counts": counts,
        "records": len(listener.first_ms),
        "latency_ms": np.array(listener.first_ms),
        "confirmed_ms": np.array(listener.confirmed_ms),
        "backlog": backlog.samples,
        "resident_mb": resident_mb,
    }


def _device_client(mqtt_url: str, device: str):
    client = make_client(mqtt_url, client_id=f"edgelens-device-{device}")
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    connect_async(client, mqtt_url)
    if not connected.wait(10):
        raise RuntimeError(f"device {device} could not connect")
    return client


def _drive(clients, devices, by_device, views, share, args) -> tuple[int, int]:
    """Every device sends at ``fps``, phases spread evenly, from one scheduler thread;
    ``share`` of the messages (every 1/share-th frame of each device) carry a view.
    Returns the messages sent and how many carried a view."""
    interval = 1.0 / args.fps
    offsets = [k * interval / len(devices) for k in range(len(devices))]
    frames = int(args.seconds * args.fps)
    started = time.monotonic() + 0.5
    sent = with_view = 0
    every = round(1 / share) if share else 0
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
        if every and (frame + k) % every == 0:
            payload = with_view_jpeg(payload, views[(frame * 7 + k) % len(views)])
            with_view += 1
        clients[k].publish(features_topic(devices[k]), payload, qos=0)
        sent += 1
    return sent, with_view


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


class _BacklogSampler:
    """Stage two's backlog, summed over the workers' /metrics every 0.2 s."""

    def __init__(self, ports: list[int]) -> None:
        self.samples: list[int] = []
        self._ports = ports
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        http = httpx.Client(trust_env=False, timeout=2)
        while not self._stop.wait(0.2):
            total = 0
            for port in self._ports:
                text = http.get(f"http://127.0.0.1:{port}/metrics").text
                for family in text_string_to_metric_families(text):
                    if family.name == "edgelens_worker_confirm_backlog":
                        total += int(family.samples[0].value)
            self.samples.append(total)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class _RecordListener:
    """Collects the latency of every record the workers announce on Redis, by stage."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(**{NOTIFY_PATTERN: self._on_record})
        self.first_ms: list[float] = []
        self.confirmed_ms: list[float] = []
        self._thread = self._pubsub.run_in_thread(sleep_time=0.01, daemon=True)

    def _on_record(self, message: dict) -> None:
        record = json.loads(message["data"])
        stage = self.confirmed_ms if record.get("stage") == "confirmed" else self.first_ms
        stage.append(float(record["latency_ms"]))

    def close(self) -> None:
        self._thread.stop()
        self._thread.join(5)
        self._pubsub.close()
        self._client.close()


def _report(results: dict, args, *, view_kb: float) -> str:
    offered = args.devices * args.fps
    cores = ",".join(map(str, args.cores)) if args.cores else "any"
    lines = [
        "## Load: simulated devices through the whole live path",
        "",
        f"{args.devices} devices (one MQTT client each) x {args.fps:g} fps = {offered:g} "
        f"messages/s for {args.seconds:g} s, {WIRE.name.lower()} vectors of views of a "
        f"{args.items:,}-item ANN catalog whose items carry real keypoints; a share of the "
        f"messages also carry a focus view (a real JPEG, {view_kb:.1f} KB on "
        "average, as a device codes it), as devices send one when a view settles (the "
        "device bench measured 9% of messages on a panning video and 31% on a hand-held one, "
        "gate on). Workers are `edgelens cloud run` processes in one shared subscription, "
        f"held to core(s) {cores}. First answer: the device's send stamp (capture time of a "
        "pre-featurized frame) to the first record written to Redis, i.e. everything beyond "
        "featurizing; 2 cores shared by the devices, mosquitto, redis-server and the workers.",
        "",
        "| workers | views | sent | answered/s | matched | dropped (queue full) | refused "
        "| lost before a worker | unexplained | first answer p50 / p99 ms | views confirmed "
        "| same view / superseded / dropped | confirmed p50 / p99 ms | backlog mean / max "
        "| worker resident MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: |",
    ]
    for (workers, share), r in results.items():
        c = r["counts"]
        refused = sum(v for k, v in c.items() if k.startswith("rejected"))
        handled = c["matched"] + c["dropped"] + refused + c["redis_errors"] + c["errors_unexpected"]
        lost_before = r["sent"] - c["received"]
        unexplained = c["received"] - handled + max(0, c["matched"] - r["records"])
        lat, conf, backlog = r["latency_ms"], r["confirmed_ms"], r["backlog"] or [0]
        lines.append(
            f"| {workers} | {share:.0%} | {r['sent']:,} | {c['matched'] / args.seconds:.0f} "
            f"| {c['matched']:,} | {c['dropped']:,} | {refused:,} | {lost_before:,} "
            f"| {unexplained:,} | {p50_p99(lat)} "
            f"| {c['confirmed']:,} of {r['with_view']:,} "
            f"| {c['confirm_same_view']:,} / {c['confirm_superseded']:,} / "
            f"{c['confirm_dropped']:,} | {p50_p99(conf, digits=0)} "
            f"| {np.mean(backlog):.1f} / {max(backlog)} | {r['resident_mb']:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
