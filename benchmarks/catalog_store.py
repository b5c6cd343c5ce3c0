"""The catalog on PostgreSQL against SQLite: same machine, same run, same catalog.

1. **Catalog add** of N items, their vectors cached (no featurizing): the store's side of
   ``catalog add``, written as ingest writes it (per item its vectors, its keypoints, its
   photo and the item; one transaction per ``--batch`` items, ingest's own batch with the
   default settings).
2. **A change reaching the workers**: two catalog followers (each with its own store
   connection, as two worker processes hold them) follow the catalog while a third store
   (the web app's) changes one item's price at a time; the time from the start of the
   change's transaction until the second of the two followers has applied it. The
   followers' index is a record of the ids applied, so the figure is the catalog's part:
   the change log, the wake-up (SQLite: the Redis message the web app publishes;
   PostgreSQL: its own NOTIFY) and the read of the item's vectors.
3. **The catalog read on the answer path**: the one the worker makes per message, stage
   two's keypoints of the best candidates' photos on a cache miss.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.common import p50_p99, publish
from edgelens.catalog.augment import DEFAULT_RECIPE
from edgelens.catalog.models import CatalogItem, PhotoOrigin
from edgelens.catalog.notify import notify_catalog_changed
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.catalog_follower import CatalogFollower
from edgelens.demo.servers import RedisServer
from edgelens.featurizer.local_features import METHOD_ID, catalog_local_features
from edgelens.samples.photos import load_photo
from edgelens.testing.postgres import PostgresServer

logger = logging.getLogger(__name__)
MODEL_ID = "bench-model"
DIM = 1280


class _AppliedIds:
    """A follower's index that records when each item id was last applied."""

    model_id = MODEL_ID
    dim = DIM

    def __init__(self) -> None:
        self.applied: dict[str, float] = {}
        self.changed = threading.Condition()

    def upsert(self, items, matrices) -> None:
        now = time.perf_counter()
        with self.changed:
            for item in items:
                self.applied[item.item_id] = now
            self.changed.notify_all()

    def remove(self, item_ids) -> None:
        with self.changed:
            for item_id in item_ids:
                self.applied.pop(item_id, None)

    def __len__(self) -> int:
        return len(self.applied)

    def wait_for(self, item_id: str, after: float, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.applied.get(item_id, -1.0) < after:
                if not self.changed.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"{item_id} not applied")
            return self.applied[item_id]


def _fill(store: CatalogStore, items: int, batch: int) -> float:
    """Seconds to write ``items`` items as an import with cached vectors does."""
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((DEFAULT_RECIPE.views, DIM)).astype(np.float32)
    features = catalog_local_features(load_photo("coffee"))
    started = time.perf_counter()
    for first in range(0, items, batch):
        with store.transaction() as write:
            for n in range(first, min(first + batch, items)):
                sha = hashlib.sha256(str(n).encode()).hexdigest()
                write.put_vectors(sha, MODEL_ID, DEFAULT_RECIPE.recipe_id, matrix)
                write.put_local_features(sha, METHOD_ID, features)
                item_id = f"sku-{n:06d}"
                cover, _ = write.put_photos(
                    item_id, [(sha, f"{sha[:2]}/{sha}.png")], PhotoOrigin.IMPORT
                )
                write.upsert(
                    CatalogItem(item_id, f"Item {n}", 1.0, "EUR", True, sha, cover.image_file)
                )
    return time.perf_counter() - started


def _change_latencies(location: str, redis_url: str, items: int, changes: int) -> list[float]:
    stores = [CatalogStore(location) for _ in range(3)]
    indexes = [_AppliedIds(), _AppliedIds()]
    followers = [
        CatalogFollower(
            store=store,
            index=index,  # type: ignore[arg-type]
            recipe=DEFAULT_RECIPE,
            after_seq=store.last_change,
            poll_s=30.0,
            redis_url=redis_url,
        )
        for store, index in zip(stores, indexes, strict=False)
    ]
    web = stores[2]
    for follower in followers:
        follower.start()
    time.sleep(1.0)  # both listening
    rng = np.random.default_rng(1)
    latencies = []
    try:
        for n in range(changes):
            item_id = f"sku-{int(rng.integers(items)):06d}"
            started = time.perf_counter()
            with web.transaction() as write:
                item = write.get(item_id)
                assert item is not None
                write.upsert(CatalogItem(**{**item.__dict__, "price": float(n)}))
            notify_catalog_changed(store=web, redis_url=redis_url)
            done = max(index.wait_for(item_id, started) for index in indexes)
            latencies.append(done - started)
            time.sleep(0.02)
    finally:
        for follower in followers:
            follower.stop()
        for store in stores:
            store.close()
    return latencies


def _answer_reads(store: CatalogStore, items: int, reads: int, top: int) -> list[float]:
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(2)
    seconds = []
    with threadpool_limits(1):  # as the worker's confirm thread runs (worker.math_threads)
        for _ in range(reads):
            ids = [f"sku-{int(i):06d}" for i in rng.choice(items, size=top, replace=False)]
            started = time.perf_counter()
            found = store.photos_local_features(ids, METHOD_ID)
            seconds.append(time.perf_counter() - started)
            assert len(found) == top
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=2, help="items per transaction")
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--top", type=int, default=10, help="candidates stage two reads")
    parser.add_argument("--no-write", action="store_true", help="print, leave the docs alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        RedisServer() as redis,
        PostgresServer(durable=True) as durable,
        PostgresServer() as test_server,
    ):
        for engine, location in (
            ("SQLite (file, WAL, synchronous=NORMAL)", str(Path(tmp) / "catalog.sqlite3")),
            ("PostgreSQL (loopback, durable: fsync on)", durable.new_database()),
            ("PostgreSQL (loopback, a test server: fsync off)", test_server.new_database()),
        ):
            logger.warning("%s: writing %d items", engine, args.items)
            store = CatalogStore(location)
            add_s = _fill(store, args.items, args.batch)
            reads = _answer_reads(store, args.items, args.reads, args.top)
            store.close()
            logger.warning("%s: %d changes", engine, args.changes)
            changes = _change_latencies(location, redis.url, args.items, args.changes)
            rows.append(
                f"| {engine} | {add_s:.1f} s ({args.items / add_s:,.0f} items/s) "
                f"| {p50_p99([1000 * s for s in changes])} "
                f"| {p50_p99([1000 * s for s in reads])} |"
            )
    body = (
        f"{args.items:,} items, {DEFAULT_RECIPE.views} vectors of {DIM} floats and one photo's "
        f"keypoints each; {args.batch} items per transaction; {args.changes} changes; "
        f"{args.reads} reads of {args.top} items' keypoints. PostgreSQL {_pg_version()} "
        "started by the script on loopback twice: durable, as a production server runs (its "
        "defaults: every commit flushed to disk), and as the tests run it (fsync, "
        "synchronous_commit and full_page_writes off). SQLite as the product opens it: WAL "
        "with synchronous=NORMAL (a commit survives a crash of the process; the last ones "
        "may be lost to a power cut).\n\n"
        "| catalog | catalog add (vectors cached) | a change reaching both workers, "
        "p50 / p99 ms | stage two's keypoint read, p50 / p99 ms |\n"
        "| --- | ---: | ---: | ---: |\n" + "\n".join(rows)
    )
    publish(
        "catalog-store",
        "## The catalog on PostgreSQL against SQLite\n\n" + body,
        write=not args.no_write,
    )


def _pg_version() -> str:
    from edgelens.testing.postgres import postgres_bin_dir

    return postgres_bin_dir().parent.name


if __name__ == "__main__":
    main()
