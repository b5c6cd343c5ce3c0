"""Exact cosine search in numpy: the index of small catalogs, and the reference the
approximate index's recall is measured against.

Vectors are unit length, so cosine similarity is one matrix-vector product. An
item may carry several vectors (its photo plus generated views); its score is its
best vector's. The filter mask is applied before ranking, so a filtered query
ranks only passing items and returns k of them whenever k pass.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgelens.catalog.models import CatalogItem
from edgelens.search.base import (
    ModelIndex,
    SearchFilter,
    best_items,
    checked_query,
    filter_mask,
    item_vectors,
)
from edgelens.wire.records import Match


@dataclass(frozen=True)
class _Snapshot:
    """Immutable arrays a query reads without holding the lock."""

    items: list[CatalogItem]
    matrix: np.ndarray  # (rows, dim)
    row_item: np.ndarray  # (rows,) index into items
    price: np.ndarray  # (items,) NaN where an item has no price
    available: np.ndarray  # (items,)
    max_rows_per_item: int


class ExactIndex(ModelIndex):
    """A thread-safe in-memory index over one model's vectors."""

    def __init__(self, model_id: str, dim: int) -> None:
        super().__init__(model_id, dim)
        self._lock = threading.Lock()
        self._vectors: dict[str, tuple[CatalogItem, np.ndarray]] = {}
        self._snapshot = _build([], dim)

    @property
    def vector_count(self) -> int:
        return int(self._snapshot.matrix.shape[0])

    def __len__(self) -> int:
        return len(self._snapshot.items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._vectors

    def upsert(self, items: Sequence[CatalogItem], vectors: Sequence[np.ndarray]) -> None:
        entries = item_vectors(items, vectors, self._dim)
        with self._lock:
            held = dict(self._vectors)
            for item, matrix in entries:
                held[item.item_id] = (item, matrix)
            self._publish(held)

    def remove(self, item_ids: Sequence[str]) -> None:
        with self._lock:
            held = dict(self._vectors)
            for item_id in item_ids:
                held.pop(item_id, None)
            self._publish(held)

    def _publish(self, held: dict[str, tuple[CatalogItem, np.ndarray]]) -> None:
        """The searched snapshot first, then what ``in`` answers from: an item ``in`` the
        index is already searched, and one gone from it no longer is."""
        self._snapshot = _build(list(held.values()), self._dim)
        self._vectors = held

    def search(
        self, query: np.ndarray, *, k: int, filters: SearchFilter | None = None
    ) -> list[Match]:
        query = checked_query(query, dim=self._dim, k=k)
        snap = self._snapshot
        rows = _passing_rows(snap, filters)
        matrix = snap.matrix if rows is None else snap.matrix[rows]
        if matrix.shape[0] == 0:
            return []
        scores = matrix @ query
        # The best rows of the top k items are among the top k * (rows per item) rows.
        candidates = min(scores.shape[0], k * snap.max_rows_per_item)
        top = np.argpartition(-scores, candidates - 1)[:candidates]
        top = top[np.argsort(-scores[top], kind="stable")]
        owners = snap.row_item[top if rows is None else rows[top]]
        return best_items(
            (
                (snap.items[owner], float(scores[row]))
                for owner, row in zip(owners.tolist(), top.tolist(), strict=True)
            ),
            k,
        )

    def close(self) -> None:
        """Nothing to release: the index is memory only."""


def _passing_rows(snap: _Snapshot, filters: SearchFilter | None) -> np.ndarray | None:
    """The rows of items passing ``filters``; None when nothing is filtered."""
    mask = filter_mask(filters, price=snap.price, available=snap.available)
    return None if mask is None else np.flatnonzero(mask[snap.row_item])


def _build(entries: list[tuple[CatalogItem, np.ndarray]], dim: int) -> _Snapshot:
    items = [item for item, _ in entries]
    counts = [matrix.shape[0] for _, matrix in entries]
    return _Snapshot(
        items=items,
        matrix=(
            np.ascontiguousarray(np.concatenate([m for _, m in entries]), dtype=np.float32)
            if entries
            else np.empty((0, dim), dtype=np.float32)
        ),
        row_item=np.repeat(np.arange(len(items)), counts),
        price=np.array([np.nan if i.price is None else i.price for i in items], dtype=np.float64),
        available=np.array([i.available for i in items], dtype=bool),
        max_rows_per_item=max(counts, default=1),
    )
