"""The approximate index against the exact reference: recall, filters, churn, multi-vector."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edgelens.catalog.models import CatalogItem
from edgelens.errors import SearchError
from edgelens.search.ann import AnnIndex
from edgelens.search.base import SearchFilter
from edgelens.search.exact import ExactIndex
from edgelens.testing.vectors import CONFIG, DIM, build, catalog, clustered


@pytest.fixture(scope="module")
def indexes() -> tuple[AnnIndex, ExactIndex, np.ndarray]:
    return build()


def _ids(matches) -> list[str]:
    return [m.item_id for m in matches]


def test_recall_against_exact_search(indexes):
    ann, exact, queries = indexes
    recalls = [
        len(set(_ids(ann.search(q, k=10))) & set(_ids(exact.search(q, k=10)))) / 10 for q in queries
    ]
    assert np.mean(recalls) >= 0.9
    top = ann.search(queries[0], k=10)
    assert [m.score for m in top] == sorted((m.score for m in top), reverse=True)
    assert top[0].score == pytest.approx(exact.search(queries[0], k=1)[0].score, abs=0.01)


@pytest.mark.parametrize(
    "flt",
    [
        SearchFilter(available_only=True),
        SearchFilter(min_price=20, max_price=60),
        SearchFilter(min_price=10, max_price=14, available_only=True),  # ~120 rows: a scan
    ],
)
def test_filtered_queries_return_k_passing_items(indexes, flt):
    ann, exact, queries = indexes
    recalls = []
    for q in queries[:20]:
        matches = ann.search(q, k=10, filters=flt)
        assert len(matches) == 10
        for m in matches:
            assert m.price is not None or flt.min_price is None
            assert not flt.available_only or m.available
            assert flt.min_price is None or flt.min_price <= m.price <= flt.max_price
        expected = _ids(exact.search(q, k=10, filters=flt))
        recalls.append(len(set(_ids(matches)) & set(expected)) / 10)
    assert np.mean(recalls) >= 0.85


def test_selective_filter_falls_back_to_exact_search(indexes):
    ann, exact, queries = indexes
    flt = SearchFilter(min_price=7, max_price=8, available_only=True)  # ~53 of 4000 rows pass
    for q in queries[:10]:
        got = ann.search(q, k=10, filters=flt)
        every = {m.item_id: m.score for m in exact.search(q, k=4000, filters=flt)}
        expected = sorted(every.values(), reverse=True)[:10]
        # Exact up to the int8 re-rank vectors: only near-ties (< 0.005 apart) may swap.
        assert [every[m.item_id] for m in got] == pytest.approx(expected, abs=5e-3)
        assert [m.score for m in got] == pytest.approx(expected, abs=5e-3)


def test_k_above_the_passing_count_returns_every_passing_item(indexes):
    ann, _, queries = indexes
    flt = SearchFilter(min_price=7, max_price=7, available_only=True)
    matches = ann.search(queries[0], k=100, filters=flt)
    assert len(matches) == sum(1 for i in catalog(4000) if i.price == 7 and i.available)
    assert ann.search(queries[0], k=5, filters=SearchFilter(min_price=1000)) == []


def test_multi_vector_items_score_their_best_vector_once():
    ann, _, _ = build(n=1000, seed=1)
    rng = np.random.default_rng(2)
    views = clustered(3, rng)
    shirt = CatalogItem("shirt", "Shirt", 5.0, "EUR", True, "", "")
    ann.upsert([shirt], [views])
    assert ann.vector_count == 1003 and len(ann) == 1001
    for view in views:
        matches = ann.search(view, k=20)
        assert matches[0].item_id == "shirt"
        assert matches[0].score == pytest.approx(1.0, abs=0.01)
        assert _ids(matches).count("shirt") == 1
    ann.upsert([shirt], [views[0]])  # replacing drops the other vectors
    assert ann.vector_count == 1001
    assert ann.search(views[1], k=1)[0].score < 0.99 or views[1] @ views[0] > 0.98


def test_upsert_and_remove_while_another_thread_queries():
    ann, _, queries = build(n=3000, seed=3)
    removed: set[str] = set()
    stale: list[str] = []
    done = threading.Event()

    def serve() -> None:
        position = 0
        while not done.is_set():
            gone = frozenset(removed)
            flt = SearchFilter(available_only=True) if position % 2 else None
            found = ann.search(queries[position % len(queries)], k=10, filters=flt)
            stale.extend(m.item_id for m in found if m.item_id in gone)
            position += 1

    server = threading.Thread(target=serve)
    server.start()
    rng = np.random.default_rng(4)
    try:
        for batch in range(10):
            fresh = catalog(100, prefix=f"new{batch}")
            vectors = clustered(100, rng)
            ann.upsert(fresh, list(vectors))
            assert ann.search(vectors[0], k=1)[0].item_id == fresh[0].item_id
            ids = [f"item-{i}" for i in range(batch * 300, batch * 300 + 300)]
            ann.remove(ids)
            removed.update(ids)
    finally:
        done.set()
        server.join()
    assert stale == []
    assert len(ann) == 1000 and "item-0" not in ann and "new9-0" in ann
    for q in queries:
        assert not set(_ids(ann.search(q, k=50))) & removed


def test_small_index_is_exact_and_bad_input_is_refused():
    rng = np.random.default_rng(5)
    items, vectors = catalog(40), clustered(40, rng)
    ann = AnnIndex.build(model_id="m", items=items, vectors=list(vectors), config=CONFIG)
    exact = ExactIndex("m", DIM)
    exact.upsert(items, list(vectors))
    assert _ids(ann.search(vectors[3], k=5)) == _ids(exact.search(vectors[3], k=5))
    with pytest.raises(SearchError):
        ann.search(vectors[0][:10], k=5)
    with pytest.raises(SearchError):
        ann.search(vectors[0], k=0)
    with pytest.raises(SearchError):
        ann.upsert(items[:1], [vectors[0][:10]])
    with pytest.raises(SearchError):
        AnnIndex.build(model_id="m", items=[], vectors=[])
