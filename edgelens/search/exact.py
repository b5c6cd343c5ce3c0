"""Exact cosine search in numpy: the v0 index and the reference recall is measured against.

Vectors are unit length, so cosine similarity is one matrix-vector product. The
filter mask is applied before ranking, so a filtered query ranks only passing
items and returns k of them whenever k pass.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from edgelens.catalog.models import CatalogItem
from edgelens.errors import SearchError
from edgelens.search.base import SearchFilter
from edgelens.wire.records import Match


class ExactIndex:
    """A thread-safe in-memory index over one model's vectors, one row per item."""

    def __init__(self, model_id: str, dim: int) -> None:
        self._model_id = model_id
        self._dim = dim
        self._lock = threading.Lock()
        self._items: list[CatalogItem] = []
        self._rows: dict[str, int] = {}
        self._matrix = np.empty((0, dim), dtype=np.float32)
        self._price = np.empty(0, dtype=np.float64)  # NaN where an item has no price
        self._available = np.empty(0, dtype=bool)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def upsert(self, items: Sequence[CatalogItem], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(items), self._dim):
            raise SearchError(
                f"expected {len(items)} vectors of dim {self._dim}, got shape {vectors.shape}"
            )
        with self._lock:
            replaced = {item.item_id for item in items}
            keep = [i for i, item in enumerate(self._items) if item.item_id not in replaced]
            self._rebuild(
                [self._items[i] for i in keep] + list(items),
                np.concatenate([self._matrix[keep], vectors]),
            )

    def remove(self, item_ids: Sequence[str]) -> None:
        gone = set(item_ids)
        with self._lock:
            keep = [i for i, item in enumerate(self._items) if item.item_id not in gone]
            self._rebuild([self._items[i] for i in keep], self._matrix[keep])

    def search(
        self, query: np.ndarray, *, k: int, filters: SearchFilter | None = None
    ) -> list[Match]:
        query = np.asarray(query, dtype=np.float32)
        if query.shape != (self._dim,):
            raise SearchError(f"query must have shape ({self._dim},), got {query.shape}")
        if k < 1:
            raise SearchError(f"k must be at least 1, got {k}")
        with self._lock:
            items, matrix = self._items, self._matrix
            rows = self._passing_rows(filters)
        if rows is not None:
            matrix = matrix[rows]
        if matrix.shape[0] == 0:
            return []
        scores = matrix @ query
        k = min(k, scores.shape[0])
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        picked = rows[top] if rows is not None else top
        return [_match(items[row], float(scores[t])) for row, t in zip(picked, top, strict=True)]

    def _passing_rows(self, filters: SearchFilter | None) -> np.ndarray | None:
        if filters is None or filters == SearchFilter():
            return None
        mask = np.ones(len(self._items), dtype=bool)
        if filters.available_only:
            mask &= self._available
        with np.errstate(invalid="ignore"):  # NaN prices fail every price bound
            if filters.min_price is not None:
                mask &= self._price >= filters.min_price
            if filters.max_price is not None:
                mask &= self._price <= filters.max_price
        return np.flatnonzero(mask)

    def _rebuild(self, items: list[CatalogItem], matrix: np.ndarray) -> None:
        self._items = items
        self._rows = {item.item_id: i for i, item in enumerate(items)}
        self._matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self._price = np.array(
            [np.nan if item.price is None else item.price for item in items], dtype=np.float64
        )
        self._available = np.array([item.available for item in items], dtype=bool)


def _match(item: CatalogItem, score: float) -> Match:
    return Match(item.item_id, item.name, item.price, item.currency, item.available, score)
