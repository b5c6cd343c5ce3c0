"""Milvus fed in bulk and queried under filters; writes the vector-database section.

Issue 6 asked whether a catalog past one machine's memory should move to a vector
database; issue 26 asks how fast a whole catalog gets into one and how fast it answers
at a million items. milvus-lite (the tests' embedded Milvus) is a stand-in, not an
engine to time, so this starts the real Milvus standalone server (PyPI ``milvus`` 2.3.x:
Go + knowhere, embedded etcd, local storage; ``--milvus-server``) in a temporary data dir
on free loopback ports, a fresh one per measurement, and stops it at the end.

The catalog is the one ``bench_search`` uses (real embeddings of camera views of the
sample photos, grown by sampling around them; full 1280-d float32 vectors, one per
item). Load paths, side by side on the first ``--slice`` items of it, each into a fresh
server with the stock configuration: the upsert as it was before bulk loading (row
dicts through pymilvus, each batch deleting its items first), today's
``MilvusIndex.upsert`` (what the catalog follower sends), and ``MilvusIndex.bulk_load``
by insert requests and by the server's bulk insert. Then at each ``--items`` size,
``bulk_load`` into a server with ``--segment-mb`` segments, and queries for every
``--search`` setting (plain and filtered, with recall) and, at the first setting, every
``--consistency`` level. Baselines on the same vectors, queries and filters: our faiss
``AnnIndex`` and exact numpy (``ExactIndex``), after the servers are gone.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import shlex
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import common_arguments, filter_cells, publish
from edgelens.catalog.models import CatalogItem
from edgelens.featurizer.runtime import Featurizer
from edgelens.search.ann import AnnConfig, AnnIndex
from edgelens.search.bench import (
    SELECTIVITIES,
    Latency,
    VectorModel,
    all_scores,
    exact_latency,
    price_filters,
    real_embeddings,
    synthetic_catalog,
    timed_queries,
)
from edgelens.search.milvus import INDEX_SETTINGS, MilvusIndex
from edgelens.testing.milvus import MilvusServer, find_server_executable

logger = logging.getLogger(__name__)

CONSISTENCY = ("Bounded", "Eventually")  # besides the collection's Session
# The other index types compared on the slice: (index params, search params to try).
IVF: dict[str, tuple[dict[str, object], list[dict[str, object]]]] = {
    "IVF_FLAT": ({"nlist": 1024}, [{"nprobe": 32}, {"nprobe": 128}]),
    "IVF_SQ8": ({"nlist": 1024}, [{"nprobe": 32}, {"nprobe": 128}]),
}


@dataclass(frozen=True)
class Loaded:
    """One load path's figures: rows/s until stored, seconds until searchable."""

    path: str
    index_type: str
    rows: int
    stored_s: float
    searchable_s: float
    segments: int
    server: str

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.stored_s


@dataclass(frozen=True)
class Queried:
    engine: str
    items: int
    settings: str
    consistency: str
    plain: Latency
    filtered: list[Latency]
    memory_mb: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--slice", type=int, default=100_000, help="items each load path gets")
    parser.add_argument("--batch", type=int, default=2_000, help="items per upsert call")
    parser.add_argument("--index-params", type=json.loads, default=INDEX_SETTINGS["HNSW"][0])
    parser.add_argument(
        "--search",
        type=json.loads,
        nargs="+",
        default=[{"ef": 64}, {"ef": 128}, {"ef": 256}, {"ef": 512}],
        help="HNSW search params to query with, each a JSON object",
    )
    parser.add_argument("--consistency", nargs="+", default=list(CONSISTENCY))
    parser.add_argument(
        "--indexes", nargs="+", default=list(IVF), choices=list(IVF), help="also on the slice"
    )
    parser.add_argument(
        "--segment-mb", type=int, default=6144, help="dataCoord.segment.maxSize at --items"
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-in-process", action="store_true", help="skip faiss and numpy")
    parser.add_argument("--milvus-server", type=Path, default=find_server_executable())
    parser.add_argument("--work-dir", type=Path, default=None, help="for the servers' data")
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("pymilvus").setLevel(logging.WARNING)
    if args.milvus_server is None:
        parser.error("no milvus-server: pip install milvus==2.3.5 in a venv, pass its path")

    featurizer = Featurizer.from_models_dir(args.models_dir, "fp32", providers=["cpu"])
    labels, real = real_embeddings(featurizer, views=24, seed=0)
    model = VectorModel.fit(real, labels)
    rng = np.random.default_rng(0)
    catalog, vectors, products = synthetic_catalog(model, max(args.items), 10, rng)

    part = _Part(args, model, products, catalog[: args.slice], vectors[: args.slice])
    loads = _load_paths(part)
    queried: list[Queried] = []
    kinds = {"HNSW": (args.index_params, args.search)} | {k: IVF[k] for k in args.indexes}
    for index_type, (build, searches) in kinds.items():
        load, measured = _bulk_and_query(part, index_type, build, searches, [], {})
        loads.append(load)
        queried += measured
    exact: dict[int, tuple[Latency, int]] = {}
    for items in sorted(args.items):
        part = _Part(args, model, products, catalog[:items], vectors[:items])
        settings = {"dataCoord.segment.maxSize": args.segment_mb}
        load, measured = _bulk_and_query(
            part, "HNSW", args.index_params, args.search, args.consistency, settings
        )
        loads.append(load)
        queried += measured
        if not args.no_in_process:
            measured, exact[items] = _in_process(part, featurizer.model_id)
            queried += measured
    body = _section(loads, queried, exact, args)
    publish("vector-database", body, write=not args.no_write)


class _Part:
    """One catalog size: its items and vectors, the queries and filters, timed against any
    index."""

    def __init__(
        self,
        args: argparse.Namespace,
        model: VectorModel,
        products: np.ndarray,
        catalog: list[CatalogItem],
        vectors: np.ndarray,
    ) -> None:
        self.args, self.catalog, self.vectors = args, catalog, vectors
        rng = np.random.default_rng(len(catalog))
        self.queries = model.views(products[rng.integers(0, products.shape[0], args.queries)], rng)
        self._price = np.array([item.price for item in catalog])
        self._available = np.array([item.available for item in catalog])
        self._filters = [
            price_filters(self._price, self._available, s, args.queries, rng) for s in SELECTIVITIES
        ]
        self._scores = all_scores(vectors, self.queries)

    @property
    def items(self) -> int:
        return len(self.catalog)

    def timed(self, index: object) -> tuple[Latency, list[Latency]]:
        """Latency and recall without filters, then under each selectivity's filters."""
        runs = [[None] * len(self.queries), *self._filters]
        plain, *filtered = (
            timed_queries(index, self.queries, f, self._scores, self._price, self._available)
            for f in runs
        )
        return plain, filtered


def _server(args: argparse.Namespace, folder: Path, settings: dict[str, object]) -> MilvusServer:
    """A server in ``folder`` with these milvus.yaml ``settings`` (milvus-server's
    --extra-config; edgelens.testing.milvus starts it) added to the stock ones."""
    launcher = folder / "milvus-server"
    extra = "".join(f" --extra-config {shlex.quote(f'{k}={v}')}" for k, v in settings.items())
    launcher.write_text(f'#!/bin/sh\nexec {shlex.quote(str(args.milvus_server))} "$@"{extra}\n')
    launcher.chmod(0o755)
    return MilvusServer(launcher, folder / "data")


def _collection(
    server: MilvusServer,
    name: str,
    index_type: str,
    build: dict[str, object],
    search: dict[str, object],
    consistency: str | None = None,
) -> MilvusIndex:
    return MilvusIndex(
        uri=server.uri,
        model_id=name,
        dim=1280,
        max_views=1,  # one vector per item here: fetch k rows, as faiss does
        index_type=index_type,
        index_params=build,
        search_params=search,
        search_consistency=consistency,
    )


def _load_paths(part: _Part) -> list[Loaded]:
    """The ways into Milvus other than the server's bulk insert, on the same slice, each
    into a fresh stock server."""
    args, catalog, vectors = part.args, part.catalog, part.vectors
    build, search = args.index_params, args.search[0]

    def batched(upsert: Callable[[list[CatalogItem], list[np.ndarray]], None]) -> None:
        for start in range(0, len(catalog), args.batch):
            end = min(len(catalog), start + args.batch)
            upsert(catalog[start:end], list(vectors[start:end]))
            if start // args.batch % 10 == 0:
                logger.info("%d / %d upserted", end, len(catalog))

    def bulk_load(milvus: MilvusIndex, _: MilvusServer) -> float:
        report = milvus.bulk_load(catalog, list(vectors), bulk_insert=False)
        return report.stored_s

    paths: dict[str, Callable[[MilvusIndex, MilvusServer], float]] = {
        f"before: upsert as row dicts, {args.batch:,} a call": lambda milvus, server: _flushed(
            milvus, lambda: batched(_RowDictUpsert(server.uri, milvus.collection))
        ),
        f"MilvusIndex.upsert, {args.batch:,} a call": lambda milvus, _: _flushed(
            milvus, lambda: batched(milvus.upsert)
        ),
        "bulk_load, insert requests": bulk_load,
    }
    loads = []
    for number, (path, load) in enumerate(paths.items()):
        with (
            tempfile.TemporaryDirectory(dir=args.work_dir, prefix="milvus-bench-") as tmp,
            _server(args, Path(tmp), {}) as server,
        ):
            milvus = _collection(server, f"bench-load-{number}", "HNSW", build, search)
            started = time.perf_counter()
            stored_s = load(milvus, server)
            searchable_s = time.perf_counter() - started
            segments = _segments(server.uri, milvus.collection)
            loads.append(
                Loaded(path, "HNSW", len(catalog), stored_s, searchable_s, segments, "stock")
            )
            logger.info("%s", loads[-1])
            milvus.close()
    return loads


def _bulk_and_query(
    part: _Part,
    index_type: str,
    build: dict[str, object],
    searches: list[dict[str, object]],
    consistency: list[str],
    settings: dict[str, object],
) -> tuple[Loaded, list[Queried]]:
    """``bulk_load`` (the server's bulk insert) into a fresh server with these settings,
    then queries at every search setting and, at a worker's (INDEX_SETTINGS), every
    consistency level."""
    args = part.args
    with (
        tempfile.TemporaryDirectory(dir=args.work_dir, prefix="milvus-bench-") as tmp,
        _server(args, Path(tmp), settings) as server,
    ):
        idle_mb = server.resident_mb()
        milvus = _collection(server, f"bench-{index_type}", index_type, build, searches[0])
        report = milvus.bulk_load(part.catalog, list(part.vectors), staging_dir=tmp)
        milvus.close()
        if report.path != "bulk insert":
            raise SystemExit(f"bulk_load went by {report.path}, not the server's bulk insert")
        segment_mb = settings.get("dataCoord.segment.maxSize", 512)
        load = Loaded(
            f"bulk_load, {report.path}",
            index_type,
            part.items,
            report.stored_s,
            report.searchable_s,
            _segments(server.uri, milvus.collection),
            "stock" if not settings else f"segments {segment_mb:,} MB",
        )
        logger.info("%s", load)
        measured = []
        warm = _collection(server, f"bench-{index_type}", index_type, build, searches[0])
        part.timed(warm)  # a first pass, not counted: the loaded index paged in, caches warm
        warm.close()
        runs = [(search, None) for search in searches]
        runs += [(INDEX_SETTINGS[index_type][1], level) for level in consistency]
        for search, level in runs:
            milvus = _collection(server, f"bench-{index_type}", index_type, build, search, level)
            plain, filtered = part.timed(milvus)
            milvus.close()
            measured.append(
                Queried(
                    f"Milvus {index_type}",
                    part.items,
                    ", ".join(f"{k} {v}" for k, v in {**build, **search}.items())
                    + f"; {load.server}, {load.segments} segment"
                    + "s" * (load.segments != 1),
                    level or "Session (the collection's)",
                    plain,
                    filtered,
                    server.resident_mb() - idle_mb,
                )
            )
            logger.info("%s", measured[-1])
    return load, measured


class _RowDictUpsert:
    """The upsert as MilvusIndex did it before bulk loading: a delete of the batch's items,
    then the rows as dicts (every float a Python float) through ``MilvusClient.insert``."""

    def __init__(self, uri: str, collection: str) -> None:
        from pymilvus import MilvusClient

        self._client, self._collection = MilvusClient(uri), collection

    def __call__(self, items: list[CatalogItem], vectors: list[np.ndarray]) -> None:
        quoted = ", ".join(f'"{item.item_id}"' for item in items)
        self._client.delete(self._collection, filter=f"item_id in [{quoted}]")
        rows = [
            {
                "item_id": item.item_id,
                "name": item.name,
                "price": item.price if item.price is not None else 0.0,
                "has_price": item.price is not None,
                "currency": item.currency,
                "available": item.available,
                "vector": vector.tolist(),
            }
            for item, vector in zip(items, vectors, strict=True)
        ]
        self._client.insert(self._collection, rows)


def _flushed(milvus: MilvusIndex, insert: Callable[[], None]) -> float:
    """Seconds ``insert`` took; returns once the rows are flushed and indexed."""
    started = time.perf_counter()
    insert()
    stored_s = time.perf_counter() - started
    milvus.flush()
    return stored_s


def _in_process(part: _Part, model_id: str) -> tuple[list[Queried], tuple[Latency, int]]:
    """Our faiss ANN index and exact numpy on the same catalog and queries."""
    gc.collect()
    before = _resident_mb()
    ann = AnnIndex.build(
        model_id=model_id, items=part.catalog, vectors=part.vectors, config=AnnConfig()
    )
    memory = _resident_mb() - before
    plain, filtered = part.timed(ann)
    measured = [
        Queried(
            "faiss AnnIndex",
            part.items,
            f"IVF-SQ8 over 256-d projection, nlist {ann.nlist}, int8 re-rank",
            "(in process)",
            plain,
            filtered,
            memory,
        )
    ]
    del ann
    gc.collect()
    count = part.args.queries if part.items <= 100_000 else 10
    exact = exact_latency(model_id, part.catalog, part.vectors, part.queries[:count])
    return measured, (exact, count)


def _section(
    loads: list[Loaded],
    queried: list[Queried],
    exact: dict[int, tuple[Latency, int]],
    args: argparse.Namespace,
) -> str:
    lines = [
        "## Vector database (real Milvus server): bulk load and filtered queries",
        "",
        "Milvus 2.3.5 standalone (PyPI `milvus`: the Go server with knowhere, embedded etcd "
        "and local storage), a fresh one per row of the load table, started by the script "
        "on loopback, fed and queried with pymilvus through `MilvusIndex`. The catalog is "
        "the search-scale section's: full 1280-d float32 vectors, one row per item with its "
        "metadata. Client and server share the same 2 cores, which other work on the "
        "machine may also use; figures are upper bounds.",
        "",
        "**Load.** Rows/s = rows / seconds until every row was stored (acknowledged by "
        "the server; for the server's bulk insert: its tasks persisted); searchable = "
        "seconds from the start until the vector index covered every row and the "
        f"collection was loaded. On the first {args.slice:,} items, each path into a stock "
        "server (segments of at most 512 MB): the upsert as it was before bulk loading (row "
        "dicts, each call deleting its items first; one flush at the end), today's "
        "`MilvusIndex.upsert` (column-wise requests, still deleting first: what the catalog "
        "follower sends), `bulk_load` by insert requests (3 connections, the collection "
        "released, one flush) and by the server's bulk insert (numpy column files in a "
        "directory the server reads), the last for each index type. The full catalog goes "
        "in by `bulk_load` into a server whose segments may reach "
        f"{args.segment_mb:,} MB (`dataCoord.segment.maxSize`).",
        "",
        "| items | path | index | server | rows/s | stored | searchable | segments |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for load in loads:
        lines.append(
            f"| {load.rows:,} | {load.path} | {load.index_type} | {load.server} "
            f"| {load.rows_per_s:,.0f} "
            f"| {load.stored_s:,.0f} s | {load.searchable_s:,.0f} s | {load.segments} |"
        )
    lines += [
        "",
        f"**Queries.** {args.queries} queries per setting, k = 10, filters = available "
        "items in a random price window holding 50/10/1% of the catalog, recall@10 "
        "against exact search under the same filter; p50 / p99 over all queries of a "
        "setting, seen by the client (pymilvus encoding and the round trip included), "
        "after one uncounted pass over the same queries. Settings: the index's build and "
        "search parameters, the server's segment size and how many segments hold the rows. "
        "Consistency: the level searches ask for (the collection's is Session), compared "
        "at a worker's search setting (`INDEX_SETTINGS`: "
        f"{_params(INDEX_SETTINGS['HNSW'][1])}; under a filter a worker searches with "
        f"{_params(INDEX_SETTINGS['HNSW'][2])}, whose row gives its filtered figures); memory = "
        "growth of the server's RSS over the idle server with the collection loaded and "
        "searched (for faiss: this process's RSS while building).",
        "",
        "| items | engine | settings | consistency | memory | p50 / p99 | recall@10 "
        "| filter 50% | filter 10% | filter 1% |",
        "|" + " ---: |" * 2 + " --- |" * 2 + " ---: |" * 6,
    ]
    for q in queried:
        lines.append(
            f"| {q.items:,} | {q.engine} | {q.settings} | {q.consistency} "
            f"| {q.memory_mb:,.0f} MB | {q.plain.p50_ms:.2f} / {q.plain.p99_ms:.2f} ms "
            f"| {q.plain.recall_at_10:.3f} | {filter_cells(q.filtered)} |"
        )
    if exact:
        lines += [
            "",
            "Exact numpy (`ExactIndex`, float32) on the same catalog: "
            + ", ".join(
                f"{items:,} items {lat.p50_ms:,.0f} / {lat.p99_ms:,.0f} ms ({count} q)"
                for items, (lat, count) in exact.items()
            )
            + ".",
        ]
    return "\n".join(lines)


def _segments(uri: str, collection: str) -> int:
    """How many sealed segments ``collection``'s rows were stored as."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri)
    try:
        return len(client.list_persistent_segments(collection))
    finally:
        client.close()


def _resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _params(params: dict[str, object]) -> str:
    return ", ".join(f"{k} {v}" for k, v in params.items())


if __name__ == "__main__":
    main()
