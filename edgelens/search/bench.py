"""The search-at-scale benchmark: approximate index vs exact numpy search on one catalog.

Catalog vectors are grown from real embeddings: seeded camera views of the
scikit-image photos featurized with the ONNX model. A PCA basis fitted on them
gives, per component, the spread between photos and the spread between views of
one photo. Synthetic products are drawn with the between-photo spread and each
catalog item is a view-like draw around its product, L2-normalised; queries are
fresh draws around a catalog product, as a shopper's camera sees it. The vectors
thus have the real embeddings' mean, correlations and scale of variation, not
the isotropy of uniform noise (which would make every neighbour equally far).

Recall@10 is measured against exact search under the same filter; the exact
numpy index (``ExactIndex``) is timed in the same run as the baseline.
"""

from __future__ import annotations

import gc
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgelens.catalog.models import CatalogItem
from edgelens.featurizer.runtime import Featurizer
from edgelens.search.ann import AnnConfig, AnnIndex
from edgelens.search.base import SearchFilter
from edgelens.search.exact import ExactIndex
from edgelens.search.persist import load_index, save_index

logger = logging.getLogger(__name__)

SELECTIVITIES = (0.5, 0.1, 0.01)
AVAILABLE_SHARE = 0.8
K = 10


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    recall_at_10: float | None = None
    selectivity: float | None = None  # share of items passing the filters, as measured


@dataclass(frozen=True)
class SearchBenchReport:
    """What ``edgelens bench search`` prints; ``to_dict`` is its JSON form."""

    items: int
    dim: int
    reduced_dim: int
    projection_energy: float  # share of the catalog's energy the projection keeps
    build_s: float
    memory_mb: float  # resident growth from building the index over in-memory vectors
    ann: Latency
    ann_filtered: list[Latency]
    exact: Latency
    exact_queries: int
    queries: int
    adds_per_s: float
    removes_per_s: float
    churn_p99_ms: float  # query latency while items are added and removed
    stale_results: int  # results naming an item already removed (must be 0)
    save_s: float
    load_s: float
    file_mb: float
    config: dict[str, object] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        return self.exact.p50_ms / max(self.ann.p50_ms, 1e-9)

    def to_dict(self) -> dict[str, object]:
        def latency(value: Latency) -> dict[str, object]:
            return {key: val for key, val in value.__dict__.items() if val is not None}

        data = dict(self.__dict__)
        data["ann"] = latency(self.ann)
        data["ann_filtered"] = [latency(value) for value in self.ann_filtered]
        data["exact"] = latency(self.exact)
        data["speedup"] = self.speedup
        return data


@dataclass(frozen=True)
class VectorModel:
    """A Gaussian model of one featurizer's embeddings in a PCA basis of real ones."""

    mean: np.ndarray  # (dim,)
    basis: np.ndarray  # (components, dim) orthonormal rows
    between: np.ndarray  # (components,) spread of products (photo means)
    within: np.ndarray  # (components,) spread of views around their photo

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: np.ndarray) -> VectorModel:
        """``labels[i]`` names the photo ``vectors[i]`` is a view of."""
        mean = vectors.mean(axis=0)
        _, _, basis = np.linalg.svd(vectors - mean, full_matrices=False)
        coords = (vectors - mean) @ basis.T
        photos, photo_of = np.unique(labels, return_inverse=True)
        photo_means = np.stack([coords[photo_of == i].mean(axis=0) for i in range(photos.size)])
        within = np.sqrt(((coords - photo_means[photo_of]) ** 2).mean(axis=0))
        total = coords.std(axis=0)
        between = np.sqrt(np.maximum(total**2 - within**2, 0.0))
        return cls(mean, basis.astype(np.float32), between, within)

    def products(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` product centres (unnormalised), distributed like the real photos."""
        return (
            self.mean
            + (rng.standard_normal((count, self.between.size)) * self.between) @ self.basis
        )

    def views(self, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One unit vector around each centre, spread like camera views of one photo."""
        noise = rng.standard_normal((centres.shape[0], self.within.size)) * self.within
        out = (centres + noise @ self.basis).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def real_embeddings(
    featurizer: Featurizer, *, views: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, vectors) of ``views`` camera views of every scikit-image sample photo."""
    from edgelens.samples.photos import SAMPLE_PHOTOS, load_photo
    from edgelens.samples.views import camera_views

    labels, frames = [], []
    for label, photo in enumerate(SAMPLE_PHOTOS):
        image = load_photo(photo.loader)
        frames.extend([image, *camera_views(image, views, seed + label)])
        labels.extend([label] * (views + 1))
    return np.array(labels), featurizer.embed(frames)


def run_search_bench(
    *,
    featurizer: Featurizer,
    items: int,
    reduced_dim: int = 256,
    queries: int = 200,
    exact_queries: int | None = None,
    views: int = 24,
    family_size: int = 10,
    churn_items: int = 20_000,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> SearchBenchReport:
    """Build, time and check the approximate index on ``items`` realistic vectors."""
    rng = np.random.default_rng(seed)
    labels, real = real_embeddings(featurizer, views=views, seed=seed)
    model = VectorModel.fit(real, labels)
    catalog, vectors, products = synthetic_catalog(model, items, family_size, rng)
    query_vectors = model.views(products[rng.integers(0, products.shape[0], queries)], rng)
    config = AnnConfig(reduced_dim=reduced_dim)

    before = _resident_mb()
    started = time.perf_counter()
    index = AnnIndex.build(
        model_id=featurizer.model_id,
        items=catalog,
        vectors=vectors,
        config=config,
        progress=progress,
    )
    build_s = time.perf_counter() - started
    gc.collect()
    memory_mb = _resident_mb() - before
    logger.info("built %d items in %.1f s, %.0f MB", items, build_s, memory_mb)

    scores = all_scores(vectors, query_vectors)
    price = np.array([item.price for item in catalog])
    available = np.array([item.available for item in catalog])
    ann = timed_queries(index, query_vectors, [None] * queries, scores, price, available)
    filtered = [
        timed_queries(
            index,
            query_vectors,
            price_filters(price, available, share, queries, rng),
            scores,
            price,
            available,
        )
        for share in SELECTIVITIES
    ]
    del scores

    exact_queries = exact_queries or (queries if items <= 100_000 else 10)
    exact = exact_latency(featurizer.model_id, catalog, vectors, query_vectors[:exact_queries])
    churn = _churn(index, model, products, query_vectors, min(churn_items, items), rng)
    save_s, load_s, file_mb = _persistence(index)
    return SearchBenchReport(
        items=items,
        dim=featurizer.dim,
        reduced_dim=reduced_dim,
        projection_energy=index.projection.explained,
        build_s=build_s,
        memory_mb=memory_mb,
        ann=ann,
        ann_filtered=filtered,
        exact=exact,
        exact_queries=exact_queries,
        queries=queries,
        **churn,
        save_s=save_s,
        load_s=load_s,
        file_mb=file_mb,
        config=dict(index.config.__dict__, nlist=index.nlist),
    )


def synthetic_catalog(
    model: VectorModel, items: int, family_size: int, rng: np.random.Generator
) -> tuple[list[CatalogItem], np.ndarray, np.ndarray]:
    """Items with log-normal prices, 80% available, their vectors (built in chunks) and the
    product centres (to draw queries from)."""
    products = model.products(max(1, items // family_size), rng)
    family = rng.integers(0, products.shape[0], items)
    vectors = np.empty((items, model.basis.shape[1]), dtype=np.float32)
    for start in range(0, items, 50_000):
        vectors[start : start + 50_000] = model.views(products[family[start : start + 50_000]], rng)
    prices = np.round(rng.lognormal(3.0, 1.0, items), 2).tolist()
    available = (rng.random(items) < AVAILABLE_SHARE).tolist()
    catalog = [
        CatalogItem(f"sku-{i:07d}", f"Item {i}", prices[i], "EUR", available[i], "", "")
        for i in range(items)
    ]
    return catalog, vectors, products


def price_filters(
    price: np.ndarray, available: np.ndarray, share: float, count: int, rng: np.random.Generator
) -> list[SearchFilter]:
    """Available items in a random price window holding ``share`` of the catalog."""
    window = min(1.0, share / AVAILABLE_SHARE)
    sorted_prices = np.sort(price[available])
    filters = []
    for low in rng.uniform(0, 1 - window, count).tolist():
        lo, hi = np.quantile(sorted_prices, [low, low + window])
        filters.append(SearchFilter(min_price=float(lo), max_price=float(hi), available_only=True))
    return filters


def all_scores(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(queries, items) exact cosine scores, one pass over the catalog in blocks."""
    scores = np.empty((queries.shape[0], vectors.shape[0]), dtype=np.float32)
    for start in range(0, vectors.shape[0], 100_000):
        scores[:, start : start + 100_000] = queries @ vectors[start : start + 100_000].T
    return scores


def timed_queries(
    index: AnnIndex,
    queries: np.ndarray,
    filters: list[SearchFilter | None],
    scores: np.ndarray,
    price: np.ndarray,
    available: np.ndarray,
) -> Latency:
    for query, flt in zip(queries[:5], filters[:5], strict=False):  # warm caches
        index.search(query, k=K, filters=flt)
    seconds, recalls, shares = [], [], []
    for query, flt, row in zip(queries, filters, scores, strict=True):
        started = time.perf_counter()
        found = index.search(query, k=K, filters=flt)
        seconds.append(time.perf_counter() - started)
        mask = _mask(flt, price, available)
        masked = row if mask is None else np.where(mask, row, -np.inf)
        passing = masked.size if mask is None else int(mask.sum())
        truth = np.argpartition(-masked, K - 1)[:K][: min(K, passing)]
        expected = {f"sku-{i:07d}" for i in truth.tolist()}
        recalls.append(len(expected & {m.item_id for m in found}) / max(len(expected), 1))
        shares.append(passing / masked.size)
    p50, p99 = np.percentile(np.array(seconds) * 1e3, [50, 99]).tolist()
    share = None if filters[0] is None else float(np.mean(shares))
    return Latency(p50, p99, float(np.mean(recalls)), share)


def _mask(flt: SearchFilter | None, price: np.ndarray, available: np.ndarray) -> np.ndarray | None:
    if flt is None:
        return None
    return available & (price >= flt.min_price) & (price <= flt.max_price)


def exact_latency(
    model_id: str, catalog: list[CatalogItem], vectors: np.ndarray, queries: np.ndarray
) -> Latency:
    exact = ExactIndex(model_id, vectors.shape[1])
    exact.upsert(catalog, list(vectors))
    exact.search(queries[0], k=K)
    seconds = []
    for query in queries:
        started = time.perf_counter()
        exact.search(query, k=K)
        seconds.append(time.perf_counter() - started)
    p50, p99 = np.percentile(np.array(seconds) * 1e3, [50, 99]).tolist()
    return Latency(p50, p99)


def _churn(
    index: AnnIndex,
    model: VectorModel,
    products: np.ndarray,
    queries: np.ndarray,
    count: int,
    rng: np.random.Generator,
    batch: int = 1_000,
) -> dict[str, float | int]:
    """Add then remove ``count`` new items in batches while another thread queries."""
    new_items = [
        CatalogItem(f"new-{i:07d}", f"New {i}", 10.0, "EUR", True, "", "") for i in range(count)
    ]
    new_vectors = model.views(products[rng.integers(0, products.shape[0], count)], rng)
    removed: set[str] = set()
    seconds: list[float] = []
    stale = 0
    done = threading.Event()

    def serve() -> None:
        nonlocal stale
        position = 0
        while not done.is_set():
            gone = frozenset(removed)
            started = time.perf_counter()
            found = index.search(queries[position % queries.shape[0]], k=K)
            seconds.append(time.perf_counter() - started)
            stale += sum(match.item_id in gone for match in found)
            position += 1

    server = threading.Thread(target=serve, name="bench-queries")
    server.start()
    try:
        started = time.perf_counter()
        for start in range(0, count, batch):
            index.upsert(new_items[start : start + batch], list(new_vectors[start : start + batch]))
        adds_s = time.perf_counter() - started
        started = time.perf_counter()
        for start in range(0, count, batch):
            ids = [item.item_id for item in new_items[start : start + batch]]
            index.remove(ids)
            removed.update(ids)
        removes_s = time.perf_counter() - started
    finally:
        done.set()
        server.join()
    return {
        "adds_per_s": count / adds_s,
        "removes_per_s": count / removes_s,
        "churn_p99_ms": float(np.percentile(np.array(seconds) * 1e3, 99)),
        "stale_results": stale,
    }


def _persistence(index: AnnIndex) -> tuple[float, float, float]:
    """Seconds to save and to load the index, and the file's size in MB."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.npz"
        started = time.perf_counter()
        save_index(index, path, catalog_version="bench")
        save_s = time.perf_counter() - started
        started = time.perf_counter()
        load_index(path, model_id=index.model_id)
        load_s = time.perf_counter() - started
        return save_s, load_s, path.stat().st_size / 1e6


def _resident_mb() -> float:
    """This process's resident set (Linux ``VmRSS``) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
