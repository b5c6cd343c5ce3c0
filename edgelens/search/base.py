"""The search interface every index implements (exact now, approximate later)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgelens.catalog.models import CatalogItem
from edgelens.errors import SearchError
from edgelens.wire.records import Match


@dataclass(frozen=True)
class SearchFilter:
    """Constraints applied while searching, so k results come back whenever k items pass."""

    min_price: float | None = None
    max_price: float | None = None
    available_only: bool = False


class VectorIndex(Protocol):
    """Nearest catalog items for a unit query vector of one model."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def __contains__(self, item_id: object) -> bool: ...

    def upsert(self, items: Sequence[CatalogItem], vectors: Sequence[np.ndarray]) -> None:
        """Add or replace items; ``vectors[i]`` is items[i]'s (dim,) vector or (n, dim)
        vectors. An item's score is its best vector's."""

    def remove(self, item_ids: Sequence[str]) -> None: ...

    def search(
        self, query: np.ndarray, *, k: int, filters: SearchFilter | None = None
    ) -> list[Match]: ...


def item_vectors(
    items: Sequence[CatalogItem], vectors: Sequence[np.ndarray], dim: int
) -> list[tuple[CatalogItem, np.ndarray]]:
    """Pair each item with its vectors as a (n, dim) float32 matrix, checking shapes."""
    if len(items) != len(vectors):
        raise SearchError(f"{len(items)} items but {len(vectors)} vector sets")
    pairs = []
    for item, vector in zip(items, vectors, strict=True):
        matrix = np.asarray(vector, dtype=np.float32)
        matrix = matrix[None, :] if matrix.ndim == 1 else matrix
        if matrix.ndim != 2 or matrix.shape[1] != dim or matrix.shape[0] == 0:
            raise SearchError(
                f"item {item.item_id!r}: expected vectors of dim {dim}, got shape {matrix.shape}"
            )
        pairs.append((item, matrix))
    return pairs


def checked_query(query: np.ndarray, *, dim: int, k: int) -> np.ndarray:
    """The query as a float32 (dim,) vector; a wrong shape or k < 1 is a SearchError."""
    query = np.asarray(query, dtype=np.float32)
    if query.shape != (dim,):
        raise SearchError(f"query must have shape ({dim},), got {query.shape}")
    if k < 1:
        raise SearchError(f"k must be at least 1, got {k}")
    return query


def search_views(
    index: VectorIndex,
    queries: Sequence[np.ndarray],
    *,
    k: int,
    filters: SearchFilter | None = None,
) -> list[Match]:
    """The ``k`` best items for several views of one frame (the frame and its focus box):
    each item scores its best view, as it scores its best catalog vector.

    Merging each view's own top ``k`` is exact: an item among the best ``k`` by its better
    score is among the best ``k`` of the view that gave that score.
    """
    best: dict[str, Match] = {}
    for query in queries:
        for match in index.search(query, k=k, filters=filters):
            kept = best.get(match.item_id)
            if kept is None or match.score > kept.score:
                best[match.item_id] = match
    return sorted(best.values(), key=lambda m: m.score, reverse=True)[:k]
