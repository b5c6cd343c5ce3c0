"""What every index shares: the filter's rule, rows to matches, and close()."""

from __future__ import annotations

import numpy as np
import pytest

from edgelens.catalog.models import CatalogItem
from edgelens.search.ann import AnnIndex
from edgelens.search.base import SearchFilter, best_items, filter_mask
from edgelens.search.exact import ExactIndex
from edgelens.testing.vectors import CONFIG, catalog, clustered
from edgelens.wire.records import Match

PRICE = np.array([5.0, 10.0, np.nan, 20.0])
AVAILABLE = np.array([True, False, True, True])


@pytest.mark.parametrize(
    ("flt", "passing"),
    [
        (SearchFilter(available_only=True), [True, False, True, True]),
        (SearchFilter(min_price=10), [False, True, False, True]),
        (SearchFilter(max_price=10), [True, True, False, False]),
        (
            SearchFilter(min_price=10, max_price=20, available_only=True),
            [False, False, False, True],
        ),
    ],
)
def test_the_mask_keeps_bounds_inclusive_and_no_price_fails_every_bound(flt, passing):
    mask = filter_mask(flt, price=PRICE, available=AVAILABLE)
    assert mask.tolist() == passing
    assert AVAILABLE.tolist() == [True, False, True, True], "the inputs are left alone"


@pytest.mark.parametrize("flt", [None, SearchFilter()])
def test_no_filter_is_no_mask(flt):
    assert filter_mask(flt, price=PRICE, available=AVAILABLE) is None


def test_rows_become_the_first_k_distinct_items_at_their_best_score():
    a, b, c = (CatalogItem(i, i.upper(), 1.0, "EUR", True, "", "") for i in "abc")
    rows = [(a, 0.9), (None, 0.85), (a, 0.8), (b, 0.7), (c, 0.6)]
    assert best_items(rows, 2) == [
        Match("a", "A", 1.0, "EUR", True, 0.9),
        Match("b", "B", 1.0, "EUR", True, 0.7),
    ]
    assert [m.item_id for m in best_items(rows, 10)] == ["a", "b", "c"]


def test_memory_indexes_close_as_a_no_op_twice():
    rng = np.random.default_rng(0)
    items, vectors = catalog(50), clustered(50, rng)
    exact = ExactIndex("model-a", vectors.shape[1])
    exact.upsert(items, list(vectors))
    ann = AnnIndex.build(model_id="model-a", items=items, vectors=list(vectors), config=CONFIG)
    for index in (exact, ann):
        index.close()
        index.close()
