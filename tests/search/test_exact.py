import numpy as np
import pytest

from edgelens.catalog.models import CatalogItem
from edgelens.errors import SearchError
from edgelens.search.base import SearchFilter, search_views
from edgelens.search.exact import ExactIndex

DIM = 16


def _items(n: int, rng: np.random.Generator) -> tuple[list[CatalogItem], np.ndarray]:
    items = [
        CatalogItem(
            item_id=f"item-{i}",
            name=f"Item {i}",
            price=None if i % 10 == 9 else float(i),
            currency="EUR",
            available=i % 3 != 0,
            image_sha256="",
            image_file="",
        )
        for i in range(n)
    ]
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    return items, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def populated():
    rng = np.random.default_rng(0)
    items, vectors = _items(200, rng)
    index = ExactIndex("model-a", DIM)
    index.upsert(items, vectors)
    query = rng.normal(size=DIM).astype(np.float32)
    return index, items, vectors, query / np.linalg.norm(query)


def test_results_are_the_true_nearest_neighbours_best_first(populated):
    index, items, vectors, query = populated
    matches = index.search(query, k=10)
    expected = np.argsort(-(vectors @ query))[:10]
    assert [m.item_id for m in matches] == [items[i].item_id for i in expected]
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    assert matches[0].score == pytest.approx(float(vectors[expected[0]] @ query), abs=1e-6)


def test_filters_apply_inside_the_search_and_still_return_k(populated):
    index, items, vectors, query = populated
    flt = SearchFilter(min_price=20, max_price=120, available_only=True)
    matches = index.search(query, k=25, filters=flt)
    passing = [
        i
        for i, it in enumerate(items)
        if it.available and it.price is not None and 20 <= it.price <= 120
    ]
    assert len(passing) > 25 and len(matches) == 25
    expected = sorted(passing, key=lambda i: -float(vectors[i] @ query))[:25]
    assert [m.item_id for m in matches] == [items[i].item_id for i in expected]
    assert all(m.available and 20 <= m.price <= 120 for m in matches)


def test_items_without_a_price_fail_every_price_bound(populated):
    index, items, _, query = populated
    matches = index.search(query, k=500, filters=SearchFilter(max_price=1e9))
    assert all(m.price is not None for m in matches)
    assert len(matches) == sum(it.price is not None for it in items)


def test_a_filter_nothing_passes_returns_nothing(populated):
    index, _, _, query = populated
    assert index.search(query, k=5, filters=SearchFilter(min_price=1e6)) == []


def test_upsert_replaces_and_remove_deletes(populated):
    index, items, _, query = populated
    target = items[5]
    index.upsert([target], query[None, :])  # now the perfect match
    assert len(index) == 200
    best = index.search(query, k=1)[0]
    assert best.item_id == target.item_id and best.score == pytest.approx(1.0)
    index.remove([target.item_id])
    assert len(index) == 199 and target.item_id not in index
    assert target.item_id not in {m.item_id for m in index.search(query, k=199)}


def test_wrong_shapes_are_refused(populated):
    index, items, _, query = populated
    with pytest.raises(SearchError, match="shape"):
        index.search(np.zeros(DIM + 1, np.float32), k=3)
    with pytest.raises(SearchError, match="dim"):
        index.upsert(items[:2], np.zeros((2, DIM + 1), np.float32))
    with pytest.raises(SearchError, match="k must"):
        index.search(query, k=0)


def test_empty_index_answers_empty():
    assert ExactIndex("m", DIM).search(np.ones(DIM, np.float32), k=3) == []


def test_an_item_with_several_vectors_scores_its_best_and_appears_once():
    rng = np.random.default_rng(3)
    items, vectors = _items(30, rng)
    query = vectors[7]
    index = ExactIndex("m", DIM)
    # item 0 carries three views; one of them is the query itself
    sets = [vectors[i] for i in range(30)]
    sets[0] = np.stack([vectors[1], query, vectors[2]])
    index.upsert(items, sets)
    assert len(index) == 30 and index.vector_count == 32
    matches = index.search(query, k=30)
    ids = [m.item_id for m in matches]
    assert len(ids) == len(set(ids)) == 30, "each item once"
    assert matches[0].score == pytest.approx(1.0, abs=1e-6)
    assert {matches[0].item_id, matches[1].item_id} == {"item-0", "item-7"}
    expected = max(float(v @ vectors[3]) for v in sets[0])
    got = next(m for m in index.search(vectors[3], k=30) if m.item_id == "item-0")
    assert got.score == pytest.approx(expected, abs=1e-6)


def test_multi_vector_items_respect_filters_and_k():
    rng = np.random.default_rng(4)
    items, vectors = _items(50, rng)
    sets = [np.stack([v, -v, v * 0.5 + 0.1]) / 1.0 for v in vectors]
    index = ExactIndex("m", DIM)
    index.upsert(items, sets)
    flt = SearchFilter(available_only=True)
    matches = index.search(vectors[2], k=10, filters=flt)
    assert len(matches) == 10 and all(m.available for m in matches)
    assert len({m.item_id for m in matches}) == 10


def test_mismatched_vector_sets_are_refused():
    index = ExactIndex("m", DIM)
    items, vectors = _items(2, np.random.default_rng(5))
    with pytest.raises(SearchError, match="2 items but 1"):
        index.upsert(items, vectors[:1])
    with pytest.raises(SearchError, match="item-1"):
        index.upsert(items, [vectors[0], np.zeros((0, DIM), np.float32)])


def test_several_views_of_a_frame_score_each_item_by_its_better_view(populated):
    index, _, vectors, query = populated
    focus = vectors[5] * 0.9 + query * 0.1  # a view close to item 5
    focus /= np.linalg.norm(focus)
    flt = SearchFilter(max_price=150.0)
    merged = search_views(index, [query, focus], k=10, filters=flt)
    both = [
        {m.item_id: m.score for m in index.search(view, k=len(index), filters=flt)}
        for view in (query, focus)
    ]
    best = {item: max(both[0].get(item, -2.0), both[1].get(item, -2.0)) for item in both[0]}
    expected = sorted(best, key=best.get, reverse=True)[:10]
    assert [m.item_id for m in merged] == expected
    assert merged[0].item_id == "item-5"
    assert [m.score for m in merged] == pytest.approx([best[i] for i in expected])
    assert search_views(index, [query], k=10) == index.search(query, k=10)
