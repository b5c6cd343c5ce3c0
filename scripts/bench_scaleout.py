"""Worker scale-out: messages/s that 1 and 2 worker processes sustain on one shared subscription.

Real mosquitto and redis-server on loopback; workers are real `edgelens cloud run`
processes serving the same saved faiss index (a catalog grown from real embeddings,
default 100,000 items with 8 vectors each: search is the worker's main cost, as in
production). One load process publishes pre-encoded float16 feature messages from
20 simulated devices faster than the workers can take them; the matched records are
counted by Redis (its LPUSH calls), over a fixed window after a warm-up.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import write_section

from edgelens.catalog.augment import CatalogRecipe
from edgelens.demo.servers import MosquittoServer, RedisServer
from edgelens.featurizer.runtime import Featurizer
from edgelens.search.ann import AnnIndex
from edgelens.search.bench import VectorModel, real_embeddings, synthetic_catalog
from edgelens.search.persist import save_index
from edgelens.wire.features import FeatureMessage, encode
from edgelens.wire.mqtt import connect_async, make_client
from edgelens.wire.names import features_topic

DEVICES = 20
EDGELENS = Path(sys.executable).with_name("edgelens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=600, help="messages/s offered")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved 1/2-worker rounds")
    parser.add_argument("--models-dir", type=Path, default=Path("data/models"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    featurizer = Featurizer.from_models_dir(args.models_dir, "fp32", providers=["cpu"])
    rng = np.random.default_rng(0)
    labels, real = real_embeddings(featurizer, views=12, seed=50)
    model = VectorModel.fit(real, labels)
    items, vectors, products = synthetic_catalog(model, args.items, 10, rng)
    views = CatalogRecipe().views
    per_item = [
        np.concatenate([v[None], model.views(np.repeat(c[None], views - 1, 0), rng)])
        for v, c in zip(vectors, products[rng.integers(0, len(products), len(items))], strict=True)
    ]
    index = AnnIndex.build(model_id=featurizer.model_id, items=items, vectors=per_item)
    queries = model.views(products[rng.integers(0, len(products), 2000)], rng)
    payloads = [
        encode(FeatureMessage(f"load-{i % DEVICES}", i, 0.0, featurizer.model_id, q))
        for i, q in enumerate(queries)
    ]

    with tempfile.TemporaryDirectory() as tmp, RedisServer() as rds, MosquittoServer() as broker:
        data = Path(tmp)
        save_index(
            index,
            data / "index" / f"{featurizer.model_id}-{CatalogRecipe().recipe_id}.npz",
            catalog_version="0",
        )
        env = {
            **os.environ,
            "EDGELENS_DATA_DIR": str(data),
            "EDGELENS_MODELS_DIR": str(args.models_dir.resolve()),
            "EDGELENS_REDIS_URL": rds.url,
            "EDGELENS_MQTT_URL": broker.url,
            "EDGELENS_SEARCH__BACKEND": "ann",
            "EDGELENS_LOG_LEVEL": "WARNING",
            "EDGELENS_WORKER__METRICS_PORT": "0",
        }
        rates: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeat):  # interleaved, so drift of the machine hits both alike
            for n in rates:
                rates[n].append(_measure(n, env, broker.url, rds.url, payloads, args))
        ratios = [two / one for one, two in zip(rates[1], rates[2], strict=True)]

    body = "\n".join(
        [
            f"Catalog of {args.items:,} items x {views} vectors (faiss index, loaded from disk "
            "by each "
            f"worker), {DEVICES} simulated devices offering {args.rate} messages/s of float16 "
            f"vectors for {args.seconds:.0f} s; workers are separate `edgelens cloud run` "
            "processes in one shared subscription; 2 cores shared with mosquitto, redis-server "
            "and the load generator.",
            "",
            f"| workers | matched messages/s, median of {args.repeat} (min-max) |",
            "| ---: | ---: |",
            *(
                f"| {n} | {np.median(r):.0f} ({min(r):.0f}-{max(r):.0f}) |"
                for n, r in rates.items()
            ),
            "",
            f"Two workers / one worker, per round: {', '.join(f'{x:.2f}x' for x in ratios)}; "
            f"median **{np.median(ratios):.2f}x**.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("scale-out", "## Worker scale-out\n\n" + body)


def _measure(workers: int, env: dict, mqtt_url: str, redis_url: str, payloads, args) -> float:
    procs = [
        subprocess.Popen([str(EDGELENS), "cloud", "run"], env=env, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    counter = _Counter(redis_url)
    client = make_client(mqtt_url, client_id=f"load-{workers}")
    connect_async(client, mqtt_url)
    try:
        deadline = time.monotonic() + 120
        before = counter.count
        while counter.count == before and time.monotonic() < deadline:  # a worker has loaded
            client.publish(features_topic("load-0"), payloads[0], qos=0)
            time.sleep(0.2)
        time.sleep(3.0 if workers > 1 else 1.0)  # the second worker too
        stop = threading.Event()
        sender = threading.Thread(target=_offer, args=(client, payloads, args.rate, stop))
        sender.start()
        time.sleep(2.0)  # warm-up
        start_count, started = counter.count, time.monotonic()
        time.sleep(args.seconds)
        rate = (counter.count - start_count) / (time.monotonic() - started)
        stop.set()
        sender.join()
        return rate
    finally:
        client.disconnect()
        client.loop_stop()
        counter.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def _offer(client, payloads, rate: int, stop: threading.Event) -> None:
    interval = 1.0 / rate
    next_at = time.monotonic()
    i = 0
    while not stop.is_set():
        payload = payloads[i % len(payloads)]
        client.publish(features_topic(f"load-{i % DEVICES}"), payload, qos=0)
        i += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class _Counter:
    """Matched records counted by Redis itself (LPUSH calls), so the count costs the
    machine nothing while the workers run."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)

    @property
    def count(self) -> int:
        stats = self._client.info("commandstats")
        return int(stats.get("cmdstat_lpush", {}).get("calls", 0))

    def close(self) -> None:
        self._client.close()


if __name__ == "__main__":
    main()
