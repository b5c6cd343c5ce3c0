"""The search interface every index implements (exact, approximate, a vector database),
and what they share: the filter's rule and how rows become matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgelens.catalog.models import CatalogItem
from edgelens.errors import SearchError
from edgelens.wire.records import Match


@dataclass(frozen=True)
class SearchFilter:
    """Constraints applied while searching, so k results come back whenever k items pass.

    Price bounds are inclusive, and an item without a price fails every bound.
    """

    min_price: float | None = None
    max_price: float | None = None
    available_only: bool = False


def filter_mask(
    filters: SearchFilter | None, *, price: np.ndarray, available: np.ndarray
) -> np.ndarray | None:
    """Which entries pass ``filters``, as a bool mask over the aligned ``price`` (NaN where
    there is none) and ``available`` arrays; None when nothing is filtered."""
    if filters is None or filters == SearchFilter():
        return None
    mask = np.array(available, dtype=bool) if filters.available_only else np.ones(len(price), bool)
    with np.errstate(invalid="ignore"):  # NaN prices fail every price bound
        if filters.min_price is not None:
            mask &= price >= filters.min_price
        if filters.max_price is not None:
            mask &= price <= filters.max_price
    return mask


class Listed(Protocol):
    """What a match tells of its item: a :class:`CatalogItem`, or a vector database's row."""

    @property
    def item_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def price(self) -> float | None: ...

    @property
    def currency(self) -> str: ...

    @property
    def available(self) -> bool: ...


def match_of(item: Listed, score: float) -> Match:
    """``item`` as a match at ``score`` (not looked for by verification)."""
    return Match(item.item_id, item.name, item.price, item.currency, item.available, score)


def best_items(rows: Iterable[tuple[Listed | None, float]], k: int) -> list[Match]:
    """The first ``k`` distinct items of ``rows`` (one per vector, best first), each at its
    best vector's score; a row without an item (a freed slot) is skipped."""
    matches: list[Match] = []
    seen: set[str] = set()
    for item, score in rows:
        if item is None or item.item_id in seen:
            continue
        seen.add(item.item_id)
        matches.append(match_of(item, score))
        if len(matches) == k:
            break
    return matches


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

    def close(self) -> None:
        """Release what the index holds outside its memory (a connection, a server); it is
        not used afterwards. Safe to call twice; a no-op where nothing is held."""


class ModelIndex:
    """What an index built for one model knows of itself: the model's id and the size of
    its vectors, as :class:`VectorIndex` reads them."""

    def __init__(self, model_id: str, dim: int) -> None:
        self._model_id = model_id
        self._dim = dim

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim


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


@contextmanager
def search_errors(what: str, *, errors: tuple[type[Exception], ...]) -> Iterator[None]:
    """A backend library's ``errors`` raised inside, mapped to the product's SearchError
    saying ``what`` failed."""
    try:
        yield
    except errors as exc:
        raise SearchError(f"{what}: {exc}") from exc


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
