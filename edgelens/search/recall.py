"""Views people corrected, recalled: the same view again gets the answer a person gave it.

A correction on the device page says what a device's view showed: a catalog item, or
something the catalog does not hold. Keypoint verification learns from the photo it adds
only where the item's pattern differs in shape (a colour band or a flavour word at camera
resolution often does not), and index rows from one camera's view of one shelf draw other
items' views to that item. So the view's own vectors are also remembered, as the worker
computes them from the view (:func:`edgelens.featurizer.focus.focus_views`), and a query
whose vectors come within :data:`SAME_VIEW_COSINE` of one is that view again: it is
answered as corrected. Only near-identical views are: a lower bar would carry a correction
to a sibling variant's view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgelens.catalog.models import CatalogItem

# Two views whose vectors are this close are the same view (a device sends each settled
# view once, and successive frames of a still camera at one shelf come this close).
SAME_VIEW_COSINE = 0.95


@dataclass(frozen=True)
class Recalled:
    """The nearest remembered view of a query: what it was corrected to (None: not in the
    catalog) and the cosine of the two."""

    item: CatalogItem | None
    score: float


@dataclass(frozen=True)
class RecalledViews:
    """Remembered views: unit vector rows (several a view), each with what its view was
    corrected to. Immutable: a worker replaces the whole when corrections change."""

    rows: np.ndarray  # (n, dim) float32
    items: tuple[CatalogItem | None, ...]  # one per row

    @classmethod
    def empty(cls, dim: int) -> RecalledViews:
        return cls(np.zeros((0, dim), np.float32), ())

    @classmethod
    def of(cls, views: Sequence[tuple[np.ndarray, CatalogItem | None]], dim: int) -> RecalledViews:
        """From each view's (n, dim) rows and what it was corrected to."""
        if not views:
            return cls.empty(dim)
        return cls(
            np.concatenate([rows for rows, _ in views]).astype(np.float32, copy=False),
            tuple(item for rows, item in views for _ in range(len(rows))),
        )

    def __len__(self) -> int:
        return len(self.items)

    def nearest(self, queries: Sequence[np.ndarray]) -> Recalled | None:
        """The remembered view nearest any of ``queries`` (unit vectors), when it is the
        same view (:data:`SAME_VIEW_COSINE`); None otherwise."""
        if not self.items or not len(queries):
            return None
        scores = (np.stack(queries).astype(np.float32, copy=False) @ self.rows.T).max(axis=0)
        best = int(np.argmax(scores))
        if scores[best] < SAME_VIEW_COSINE:
            return None
        return Recalled(self.items[best], float(scores[best]))
