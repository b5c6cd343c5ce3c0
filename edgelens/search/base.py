"""The search interface every index implements (exact now, approximate later)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgelens.catalog.models import CatalogItem
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

    def upsert(self, items: Sequence[CatalogItem], vectors: np.ndarray) -> None:
        """Add or replace items (one vector per row of ``vectors``)."""

    def remove(self, item_ids: Sequence[str]) -> None: ...

    def search(
        self, query: np.ndarray, *, k: int, filters: SearchFilter | None = None
    ) -> list[Match]: ...
