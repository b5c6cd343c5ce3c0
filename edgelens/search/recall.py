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

import itertools
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
class _Rows:
    """Unit vector rows, each with what its view was corrected to."""

    rows: np.ndarray  # (n, dim) float32
    items: tuple[CatalogItem | None, ...]  # one per row

    def nearest(self, queries: Sequence[np.ndarray]) -> Recalled | None:
        if not self.items or not len(queries):
            return None
        scores = (np.stack(queries).astype(np.float32, copy=False) @ self.rows.T).max(axis=0)
        best = int(np.argmax(scores))
        if scores[best] < SAME_VIEW_COSINE:
            return None
        return Recalled(self.items[best], float(scores[best]))


@dataclass(frozen=True)
class RecalledViews:
    """Remembered views, each by two kinds of rows: the vectors its frame came with, as
    the device sent them (what stage one has of the next frames), and the view's own, as
    stage two makes them. Stage one compares only the first kind (the second hardly ever
    meets a frame's vectors, and each row read costs every message), stage two both.
    Immutable: a worker replaces the whole when corrections change."""

    sent: _Rows
    every: _Rows
    spans: tuple[tuple[slice, slice], ...]  # each view's rows in ``every``: sent, seen

    @classmethod
    def empty(cls, dim: int) -> RecalledViews:
        return cls.of([], dim)

    @classmethod
    def of(
        cls, views: Sequence[tuple[np.ndarray, np.ndarray, CatalogItem | None]], dim: int
    ) -> RecalledViews:
        """From each view's rows as sent (k, dim) and as seen in stage two (m, dim), and
        what it was corrected to. All the sent rows come first in one matrix, so stage
        one's are a slice of it, held once."""
        blocks = [(view[kind], view[2]) for kind in (0, 1) for view in views]
        rows = np.concatenate([np.zeros((0, dim), np.float32), *(m for m, _ in blocks)])
        items = tuple(item for matrix, item in blocks for _ in range(len(matrix)))
        every = _Rows(rows.astype(np.float32, copy=False), items)
        bounds = list(itertools.accumulate((len(m) for m, _ in blocks), initial=0))
        cuts = [slice(start, stop) for start, stop in itertools.pairwise(bounds)]
        n, sent = len(views), bounds[len(views)]
        spans = tuple(zip(cuts[:n], cuts[n:], strict=True))
        return cls(_Rows(every.rows[:sent], items[:sent]), every, spans)

    def __len__(self) -> int:
        """Rows held, of both kinds."""
        return len(self.every.items)

    def rows_of(self, view: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``view``-th view's rows, as sent and as seen: slices of the one matrix (the
        next :meth:`of` takes them without a second copy kept meanwhile)."""
        sent, seen = self.spans[view]
        return self.every.rows[sent], self.every.rows[seen]

    def nearest(self, queries: Sequence[np.ndarray], *, stage_two: bool) -> Recalled | None:
        """The remembered view nearest any of ``queries`` (unit vectors: a message's, and in
        ``stage_two`` its view's too), when it is the same view (:data:`SAME_VIEW_COSINE`);
        None otherwise."""
        return (self.every if stage_two else self.sent).nearest(queries)
