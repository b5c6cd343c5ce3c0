"""Worker scale-out: messages/s that 1 and 2 worker processes sustain on one shared subscription.

Real mosquitto and redis-server on loopback; workers are real `edgelens cloud run`
processes serving the same saved faiss index (a catalog grown from real embeddings,
default 100,000 items with 8 vectors each: search is the worker's main cost, as in
production). One load process publishes pre-encoded feature messages (in the device's wire
dtype) from 20 simulated devices faster than the workers can take them; the matched records
are counted by Redis (its LPUSH calls), over a fixed window after a warm-up.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.common import common_arguments, publish
from benchmarks.workers import (
    WIRE,
    CpuMeter,
    LpushCounter,
    prepare_catalog,
    worker_env,
    worker_processes,
)
from edgelens.catalog.augment import CatalogRecipe
from edgelens.demo.servers import MosquittoServer, RedisServer
from edgelens.featurizer.runtime import Featurizer
from edgelens.wire.features import restamp
from edgelens.wire.mqtt import connect_async, make_client
from edgelens.wire.names import features_topic

DEVICES = 20
logger = logging.getLogger(__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=600, help="messages/s offered")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--workers",
        type=lambda text: sorted({1, *(int(n) for n in text.split(","))}),
        default=[1, 2],
        help="worker counts to compare with one worker, e.g. 2,4",
    )
    parser.add_argument("--section", default="scale-out", help="docs/benchmarks.md section")
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logger.setLevel(logging.INFO)
    featurizer = Featurizer.from_models_dir(args.models_dir, "fp32", providers=["cpu"])
    views = CatalogRecipe().views
    devices = [f"load-{i}" for i in range(DEVICES)]

    with tempfile.TemporaryDirectory() as tmp, RedisServer() as rds, MosquittoServer() as broker:
        data = Path(tmp)
        started = time.monotonic()
        payloads = prepare_catalog(
            featurizer, items=args.items, queries=2000, data_dir=data, device_ids=devices
        )
        logger.info("catalog index saved in %.0f s", time.monotonic() - started)
        env = worker_env(
            data_dir=data, models_dir=args.models_dir, redis_url=rds.url, mqtt_url=broker.url
        )
        # Each simulated device offers 30-150 messages a second, above a camera's fair
        # share (worker.device_messages_per_s): this bench measures throughput, not fairness.
        env["EDGELENS_WORKER__DEVICE_MESSAGES_PER_S"] = "10000"
        env["EDGELENS_WORKER__DEVICE_MESSAGE_BURST"] = "10000"
        rates: dict[int, list[float]] = {n: [] for n in args.workers}
        cores: dict[int, list[dict[str, float]]] = {n: [] for n in args.workers}
        for _ in range(args.repeat):  # interleaved, so drift of the machine hits both alike
            for n in rates:
                rate, cpu = _measure(n, env, (broker, rds), payloads, args)
                rates[n].append(rate)
                cores[n].append(cpu)
                logger.info("%d workers: %.0f matched/s, cores %s", n, rate, cpu)
        roles = list(cores[1][0])
        median_cores = {
            n: {r: float(np.median([c[r] for c in cores[n]])) for r in roles} for n in cores
        }
    most = args.workers[-1]
    ratios = {
        n: [many / one for one, many in zip(rates[1], rates[n], strict=True)]
        for n in args.workers[1:]
    }
    cpus = os.cpu_count() or 1
    left = cpus - sum(v for r, v in median_cores[most].items() if r != "workers")
    ceiling = min(most, left / median_cores[1]["workers"])

    body = "\n".join(
        [
            f"Catalog of {args.items:,} items x {views} vectors (faiss index, loaded from disk "
            f"by each worker), {DEVICES} simulated devices offering {args.rate} messages/s of "
            f"{WIRE.name.lower()} vectors for {args.seconds:.0f} s; workers are separate "
            "`edgelens cloud run` processes in one shared subscription; "
            f"{cpus} cores shared with mosquitto, redis-server and the load generator.",
            "",
            f"| workers | matched messages/s, median of {args.repeat} (min-max) "
            "| x one worker, median (per round) |",
            "| ---: | ---: | ---: |",
            *(
                f"| {n} | {np.median(r):.0f} ({min(r):.0f}-{max(r):.0f}) | "
                + (
                    f"**{np.median(ratios[n]):.2f}x** ({', '.join(f'{x:.2f}' for x in ratios[n])})"
                    if n in ratios
                    else "1.00x"
                )
                + " |"
                for n, r in rates.items()
            ),
            "",
            f"Where the {cpus} cores went (CPU seconds per second, median; from /proc):",
            "",
            f"| workers | {' | '.join(roles)} |",
            f"| ---: |{' ---: |' * len(roles)}",
            *(
                f"| {n} | {' | '.join(f'{median_cores[n][r]:.2f}' for r in roles)} |"
                for n in median_cores
            ),
            "",
            f"With {most} workers the other processes kept {cpus - left:.2f} cores busy, "
            f"leaving the workers {left:.2f}; one worker alone used "
            f"{median_cores[1]['workers']:.2f} for its rate, so this machine allows {most} "
            f"workers at most {ceiling:.2f}x of one.",
            "Matched messages per worker core-second: "
            + ", ".join(
                f"{n} worker{'s' if n > 1 else ''} "
                f"{np.median(rates[n]) / median_cores[n]['workers']:.0f}"
                for n in rates
            )
            + ".",
        ]
    )
    publish(args.section, "## Worker scale-out\n\n" + body, write=not args.no_write)


def _measure(workers: int, env: dict, servers, payloads, args) -> tuple[float, dict[str, float]]:
    broker, rds = servers
    counter = LpushCounter(rds.url)
    client = make_client(broker.url, client_id=f"load-{workers}")
    connect_async(client, broker.url)
    try:
        with worker_processes([env] * workers) as procs:
            deadline = time.monotonic() + 120
            before = counter.count
            seq = 0
            while counter.count == before and time.monotonic() < deadline:  # a worker loaded
                seq += 1
                fresh = restamp(payloads[0], seq=seq, captured_at=time.time())
                client.publish(features_topic("load-0"), fresh, qos=0)
                time.sleep(0.2)
            time.sleep(3.0 if workers > 1 else 1.0)  # the second worker too
            stop = threading.Event()
            sender = threading.Thread(target=_offer, args=(client, payloads, args.rate, stop))
            sender.start()
            time.sleep(2.0)  # warm-up
            meter = CpuMeter(
                {
                    "workers": [p.pid for p in procs],
                    "mosquitto": [broker.pid],
                    "redis-server": [rds.pid],
                    "load generator": [os.getpid()],
                }
            )
            meter.start()
            start_count, started = counter.count, time.monotonic()
            time.sleep(args.seconds)
            rate = (counter.count - start_count) / (time.monotonic() - started)
            cpu = meter.stop()
            stop.set()
            sender.join()
            return rate, cpu
    finally:
        client.disconnect()
        client.loop_stop()
        counter.close()


def _offer(client, payloads, rate: int, stop: threading.Event) -> None:
    interval = 1.0 / rate
    next_at = time.monotonic()
    i = 0
    while not stop.is_set():
        # Fresh stamps: the worker refuses a replayed (seq, capture time) as it should.
        payload = restamp(payloads[i % len(payloads)], seq=i + 1000, captured_at=time.time())
        client.publish(features_topic(f"load-{i % DEVICES}"), payload, qos=0)
        i += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


if __name__ == "__main__":
    main()
