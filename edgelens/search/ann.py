"""Approximate cosine search for large catalogs that change while they are searched.

Why this shape (measured; see docs/benchmarks.md, section search-scale):

* A faiss inverted-file index (IVF, 8-bit scalar-quantised cells) over vectors
  reduced by a :class:`~edgelens.search.projection.Projection` builds several
  times faster than HNSW on two cores, supports true removal, and applies
  filters in C++ (``IDSelectorBitmap``), where hnswlib calls back into Python.
* The shortlist is re-ranked with the full vectors, kept as int8 with one scale
  per dimension (a quarter of float32's memory), so the final order and scores
  are those of the full embedding up to quantisation (~1e-3 in cosine).
* A filter becomes a bitmap over rows applied while the cells are scanned; the
  cells probed grow as 1/√(share passing), since the k nearest passing items lie
  further out (linear growth measured no better recall, at twice the time), so
  k results come back whenever k items pass. A selective filter skips the cells:
  up to ``scan_rows`` passing rows are scored on int8 reduced vectors (a 10k-row
  scan costs less than the cells' id checks), and up to ``exact_rows`` on the
  full vectors, which is exact search over the passing items.

Rows are vector slots; an item owns one row per vector and scores its best.
Every read and write of the faiss index and the row tables holds one lock, so
a removed item is never returned and a slot reused by a new item is never
reported under its old owner.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import faiss
import numpy as np

from edgelens.catalog.models import CatalogItem
from edgelens.errors import SearchError
from edgelens.search.base import (
    ModelIndex,
    SearchFilter,
    best_items,
    checked_query,
    filter_mask,
    item_vectors,
    search_errors,
)
from edgelens.search.projection import Projection
from edgelens.wire.records import Match

logger = logging.getLogger(__name__)

_INT8_MAX = 127.0


@dataclass(frozen=True)
class Int8Codec:
    """Symmetric int8 with one scale per dimension: a quarter of float32's bytes."""

    scale: np.ndarray  # (dim,) float32: largest magnitude per dimension

    @classmethod
    def fit(cls, vectors: np.ndarray) -> Int8Codec:
        return cls(np.maximum(np.abs(vectors).max(axis=0), 1e-6).astype(np.float32))

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        scaled = vectors * (_INT8_MAX / self.scale)
        np.rint(scaled, out=scaled)
        np.clip(scaled, -_INT8_MAX, _INT8_MAX, out=scaled)
        return scaled.astype(np.int8)

    def weights(self, query: np.ndarray) -> np.ndarray:
        """``codes.astype(float32) @ weights(q)`` is the decoded vectors' inner product with q."""
        return (query * (self.scale / _INT8_MAX)).astype(np.float32)


@dataclass(frozen=True)
class AnnConfig:
    """Tuning of :class:`AnnIndex`; the defaults are the measured choice for 1M items."""

    reduced_dim: int = 256
    nlist: int | None = None  # IVF cells; None: about 4·√rows at build time
    nprobe: int = 96  # cells scanned by an unfiltered query
    rerank: int = 100  # shortlist re-ranked with the full vectors
    exact_rows: int = 1024  # rank every passing row exactly when at most this many pass
    scan_rows: int = 20_000  # shortlist by scanning the passing rows when at most this many
    train_rows: int = 100_000  # sample the projection and the cells are fitted on
    kmeans_iterations: int = 10
    seed: int = 0


@dataclass
class AnnState:
    """Everything an :class:`AnnIndex` is made of, for persistence."""

    config: AnnConfig
    projection: Projection
    full: Int8Codec
    reduced: Int8Codec
    ivf: np.ndarray  # faiss.serialize_index bytes as uint8
    codes: np.ndarray  # (rows, dim) int8 full vectors
    reduced_codes: np.ndarray  # (rows, reduced_dim) int8 reduced vectors
    row_item: np.ndarray  # (rows,) int64 index into items, -1 for a free slot
    items: list[CatalogItem]


class _Rows:
    """Growable per-row tables; row r holds a vector of item ``owner[r]``."""

    def __init__(self, dim: int, reduced_dim: int) -> None:
        self.codes = np.zeros((0, dim), dtype=np.int8)
        self.reduced = np.zeros((0, reduced_dim), dtype=np.int8)
        self.price = np.zeros(0, dtype=np.float64)  # NaN: no price
        self.available = np.zeros(0, dtype=bool)
        self.alive = np.zeros(0, dtype=bool)
        self.owner: list[CatalogItem | None] = []
        self.free: list[int] = []

    @property
    def used(self) -> int:
        return len(self.owner)

    def allocate(self, count: int) -> np.ndarray:
        reused = [self.free.pop() for _ in range(min(count, len(self.free)))]
        fresh = np.arange(self.used, self.used + count - len(reused))
        if fresh.size:
            self.owner.extend([None] * fresh.size)
            self._reserve(self.used)
        return np.concatenate([np.array(reused, dtype=np.int64), fresh]).astype(np.int64)

    def _reserve(self, rows: int) -> None:
        capacity = self.alive.shape[0]
        if rows <= capacity:
            return
        grown = max(rows, capacity + capacity // 2, 1024)
        self.codes = _grow(self.codes, grown)
        self.reduced = _grow(self.reduced, grown)
        self.price = _grow(self.price, grown)
        self.available = _grow(self.available, grown)
        self.alive = _grow(self.alive, grown)

    def assign(
        self, rows: np.ndarray, owners: list[CatalogItem], codes: np.ndarray, reduced: np.ndarray
    ) -> None:
        """Fill row ``rows[i]`` with ``owners[i]``'s metadata and codes (one call per batch)."""
        self.codes[rows] = codes
        self.reduced[rows] = reduced
        self.price[rows] = [np.nan if item.price is None else item.price for item in owners]
        self.available[rows] = [item.available for item in owners]
        self.alive[rows] = True
        for row, item in zip(rows.tolist(), owners, strict=True):
            self.owner[row] = item

    def release(self, rows: list[int]) -> None:
        self.alive[rows] = False
        for row in rows:
            self.owner[row] = None
        self.free.extend(rows)


class AnnIndex(ModelIndex):
    """A thread-safe approximate index usable wherever an ``ExactIndex`` is.

    Build one with :meth:`build` (fits the projection and the IVF cells on the
    given vectors) or restore one with :meth:`from_state` / ``persist.load_index``.
    """

    def __init__(
        self,
        projection: Projection,
        ivf: faiss.Index,
        *,
        full: Int8Codec,
        reduced: Int8Codec,
        config: AnnConfig,
    ) -> None:
        if not isinstance(ivf, faiss.IndexIVF):
            raise SearchError(f"expected a faiss IVF index, got {type(ivf).__name__}")
        if ivf.d != projection.reduced_dim:
            raise SearchError(f"IVF dim {ivf.d} does not match projection {projection.version}")
        super().__init__(projection.model_id, projection.dim)
        self._projection = projection
        self._ivf = ivf
        self._ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # O(1) removal by id
        self._full = full
        self._reduced = reduced
        self._config = config
        self._lock = threading.Lock()
        self._rows = _Rows(projection.dim, projection.reduced_dim)
        self._by_id: dict[str, tuple[int, ...]] = {}
        self._max_rows_per_item = 1

    @classmethod
    def build(
        cls,
        *,
        model_id: str,
        items: Sequence[CatalogItem],
        vectors: Sequence[np.ndarray],
        config: AnnConfig | None = None,
        batch_size: int = 50_000,
        progress: Callable[[int], None] | None = None,
    ) -> AnnIndex:
        """Fit projection, quantiser scale and IVF cells on ``vectors``, then add them all."""
        config = config or AnnConfig()
        if not items:
            raise SearchError("cannot build an approximate index from an empty catalog")
        dim = int(np.asarray(vectors[0]).shape[-1])
        sample = _training_sample(item_vectors(items, vectors, dim), config)
        projection = Projection.fit(
            sample, model_id=model_id, reduced_dim=config.reduced_dim, seed=config.seed
        )
        reduced = projection.reduce(sample)
        nlist = config.nlist or _default_nlist(len(vectors))
        nlist = max(1, min(nlist, reduced.shape[0]))
        ivf = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(projection.reduced_dim),
            projection.reduced_dim,
            nlist,
            faiss.ScalarQuantizer.QT_8bit,
            faiss.METRIC_INNER_PRODUCT,
        )
        ivf.cp.niter = config.kmeans_iterations
        ivf.cp.seed = config.seed
        ivf.cp.spherical = True  # inner-product cells: centroids on the sphere stay balanced
        ivf.cp.min_points_per_centroid = 1  # small catalogs train fewer points per cell
        with _faiss_errors("cannot train the IVF cells"):
            ivf.train(reduced)
        logger.info(
            "IVF%d,SQ8 on %s trained on %d vectors (projection keeps %.1f%% of energy)",
            nlist,
            projection.version,
            reduced.shape[0],
            100 * projection.explained,
        )
        index = cls(
            projection,
            ivf,
            full=Int8Codec.fit(sample),
            reduced=Int8Codec.fit(reduced),
            config=config,
        )
        for start in range(0, len(items), batch_size):
            stop = start + batch_size
            index.upsert(items[start:stop], vectors[start:stop])
            if progress:
                progress(len(items[start:stop]))
        return index

    @property
    def projection(self) -> Projection:
        return self._projection

    @property
    def config(self) -> AnnConfig:
        return self._config

    @property
    def nlist(self) -> int:
        return int(self._ivf.nlist)

    @property
    def vector_count(self) -> int:
        return int(self._ivf.ntotal)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def upsert(self, items: Sequence[CatalogItem], vectors: Sequence[np.ndarray]) -> None:
        entries = item_vectors(items, vectors, self.dim)
        if not entries:
            return
        latest = dict((item.item_id, (item, matrix)) for item, matrix in entries)
        full = np.concatenate([matrix for _, matrix in latest.values()])
        reduced = self._projection.reduce(full)  # the heavy work stays outside the lock
        codes, reduced_codes = self._full.encode(full), self._reduced.encode(reduced)
        counts = [matrix.shape[0] for _, matrix in latest.values()]
        owners = [
            item
            for (item, _), count in zip(latest.values(), counts, strict=True)
            for _ in range(count)
        ]
        with self._lock:
            self._drop(list(latest))
            rows = self._rows.allocate(full.shape[0])
            self._rows.assign(rows, owners, codes, reduced_codes)
            bounds = np.cumsum([0, *counts]).tolist()
            for i, item_id in enumerate(latest):
                self._by_id[item_id] = tuple(rows[bounds[i] : bounds[i + 1]].tolist())
            self._max_rows_per_item = max(self._max_rows_per_item, *counts)
            with _faiss_errors("cannot add vectors"):
                self._ivf.add_with_ids(reduced, rows)

    def remove(self, item_ids: Sequence[str]) -> None:
        with self._lock:
            self._drop(item_ids)

    def search(
        self, query: np.ndarray, *, k: int, filters: SearchFilter | None = None
    ) -> list[Match]:
        query = checked_query(query, dim=self.dim, k=k)
        reduced = self._projection.reduce(query[None, :])
        with self._lock:
            mask = self._passing(filters)
            passing = int(np.count_nonzero(mask)) if mask is not None else self.vector_count
            if passing == 0:
                return []
            # Unfiltered, the cells beat a scan; filtered, a scan beats the cells' id checks.
            if passing <= (self._config.exact_rows if mask is None else self._config.scan_rows):
                alive = self._rows.alive[: self._rows.used]
                rows = np.flatnonzero(alive if mask is None else mask)
                if rows.size > self._config.exact_rows:
                    rows = self._scan(rows, reduced[0], k)
            else:
                rows = self._shortlist(reduced, mask, passing, k)
            return self._rank(rows, self._full.weights(query), k)

    def close(self) -> None:
        """Nothing to release: the index is memory only."""

    def state(self) -> AnnState:
        """A consistent copy of the index's content (taken under the lock)."""
        with self._lock:
            used = self._rows.used
            items = list({id(item): item for item in self._rows.owner if item}.values())
            position = {id(item): i for i, item in enumerate(items)}
            return AnnState(
                config=self._config,
                projection=self._projection,
                full=self._full,
                reduced=self._reduced,
                ivf=faiss.serialize_index(self._ivf),
                codes=self._rows.codes[:used].copy(),
                reduced_codes=self._rows.reduced[:used].copy(),
                row_item=np.array(
                    [position[id(item)] if item else -1 for item in self._rows.owner],
                    dtype=np.int64,
                ),
                items=items,
            )

    @classmethod
    def from_state(cls, state: AnnState) -> AnnIndex:
        """Rebuild the row tables around the saved IVF index; nothing is re-trained or re-added."""
        with _faiss_errors("cannot restore the IVF index"):
            ivf = faiss.deserialize_index(state.ivf)
        index = cls(
            state.projection, ivf, full=state.full, reduced=state.reduced, config=state.config
        )
        if index.vector_count != int(np.count_nonzero(state.row_item >= 0)):
            raise SearchError("saved IVF index and row table disagree")
        alive = np.flatnonzero(state.row_item >= 0)
        rows = index._rows
        rows.allocate(state.row_item.size)
        rows.free = np.flatnonzero(state.row_item < 0).tolist()
        rows.assign(
            alive,
            [state.items[i] for i in state.row_item[alive].tolist()],
            state.codes[alive],
            state.reduced_codes[alive],
        )
        owned: dict[str, list[int]] = {}
        for row, item in zip(alive.tolist(), state.row_item[alive].tolist(), strict=True):
            owned.setdefault(state.items[item].item_id, []).append(row)
        index._by_id = {item_id: tuple(own) for item_id, own in owned.items()}
        index._max_rows_per_item = max(map(len, owned.values()), default=1)
        return index

    def _drop(self, item_ids: Sequence[str]) -> None:
        old = [self._by_id.pop(item_id) for item_id in item_ids if item_id in self._by_id]
        if not old:
            return
        rows = [row for own in old for row in own]
        ids = np.array(rows, dtype=np.int64)
        self._ivf.remove_ids(faiss.IDSelectorArray(ids.size, faiss.swig_ptr(ids)))
        self._rows.release(rows)

    def _passing(self, filters: SearchFilter | None) -> np.ndarray | None:
        """Rows passing ``filters`` as a bool mask, or None when nothing is filtered."""
        used = self._rows.used
        mask = filter_mask(
            filters, price=self._rows.price[:used], available=self._rows.available[:used]
        )
        if mask is not None:
            mask &= self._rows.alive[:used]
        return mask

    def _shortlist(
        self, reduced: np.ndarray, mask: np.ndarray | None, passing: int, k: int
    ) -> np.ndarray:
        """Candidate rows from the IVF cells, the filter applied during the scan."""
        share = passing / max(self.vector_count, 1)
        nprobe = min(self._ivf.nlist, math.ceil(self._config.nprobe / math.sqrt(share)))
        bitmap = selector = None  # both must outlive the search: faiss holds raw pointers
        if mask is not None:
            bitmap = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(bitmap.size, faiss.swig_ptr(bitmap))
        params = faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)
        wanted = max(self._config.rerank, k) * self._max_rows_per_item
        with _faiss_errors("approximate search failed"):
            _, rows = self._ivf.search(reduced, min(wanted, passing), params=params)
        rows = rows[0]
        return rows[rows >= 0]

    def _scan(self, rows: np.ndarray, reduced: np.ndarray, k: int) -> np.ndarray:
        """The shortlist among ``rows`` by their int8 reduced vectors (no cells involved)."""
        scores = _dot(self._rows.reduced[rows], self._reduced.weights(reduced))
        wanted = min(scores.size, max(self._config.rerank, k) * self._max_rows_per_item)
        return rows[np.argpartition(-scores, wanted - 1)[:wanted]]

    def _rank(self, rows: np.ndarray, weighted: np.ndarray, k: int) -> list[Match]:
        """The k best items among ``rows`` by their full (int8) vectors, best first."""
        scores = _dot(self._rows.codes[rows], weighted)
        take = min(scores.size, k * self._max_rows_per_item)
        top = np.argpartition(-scores, take - 1)[:take]
        top = top[np.argsort(-scores[top], kind="stable")]
        owner = self._rows.owner
        return best_items(
            ((owner[int(rows[position])], float(scores[position])) for position in top.tolist()),
            k,
        )


def _faiss_errors(what: str) -> AbstractContextManager[None]:
    """faiss reports every failure as RuntimeError; map it to the product's SearchError."""
    return search_errors(what, errors=(RuntimeError,))


def _training_sample(
    entries: list[tuple[CatalogItem, np.ndarray]], config: AnnConfig
) -> np.ndarray:
    total = sum(matrix.shape[0] for _, matrix in entries)
    rng = np.random.default_rng(config.seed)
    if total <= config.train_rows:
        return np.concatenate([matrix for _, matrix in entries])
    picked = np.sort(rng.choice(len(entries), min(config.train_rows, len(entries)), replace=False))
    return np.concatenate([entries[i][1] for i in picked.tolist()])


def _dot(codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``codes @ weights`` through einsum, not BLAS: OpenBLAS's threads would wait on the
    cores faiss's OpenMP threads spin on, and the product would take many times longer."""
    return np.einsum("ij,j->i", codes.astype(np.float32), weights)


def _default_nlist(rows: int) -> int:
    return max(1, int(4 * math.sqrt(rows)))


def _grow(array: np.ndarray, rows: int) -> np.ndarray:
    grown = np.zeros((rows, *array.shape[1:]), dtype=array.dtype)
    grown[: array.shape[0]] = array
    return grown
