"""The Milvus backend against a real embedded Milvus (milvus-lite): the same answers as the
exact reference, filters inside the search, multi-vector items, removal, model separation."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edgelens.catalog.models import CatalogItem
from edgelens.search.base import SearchFilter
from edgelens.search.exact import ExactIndex
from edgelens.testing.processes import kill_starter

pytest.importorskip("pymilvus", reason="the [vectordb] extra")
from edgelens.search.milvus import MilvusIndex

DIM = 32


def _catalog(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    items = [
        CatalogItem(
            f"sku-{i}", f"Item {i}", None if i % 10 == 9 else float(i), "EUR", i % 3 != 0, "", ""
        )
        for i in range(n)
    ]
    sets = []
    for _ in range(n):
        views = rng.normal(size=(3, DIM)).astype(np.float32)
        sets.append(views / np.linalg.norm(views, axis=1, keepdims=True))
    queries = rng.normal(size=(5, DIM)).astype(np.float32)
    return items, sets, queries / np.linalg.norm(queries, axis=1, keepdims=True)


@pytest.fixture
def uri(tmp_path):
    return str(tmp_path / "milvus.db")


@pytest.fixture
def filled(uri):
    items, sets, queries = _catalog(120)
    milvus = MilvusIndex(uri=uri, model_id="model-a", dim=DIM, max_views=3)
    milvus.upsert(items, sets)
    exact = ExactIndex("model-a", DIM)
    exact.upsert(items, sets)
    yield milvus, exact, items, queries
    milvus.close()


@pytest.mark.parametrize(
    "flt",
    [None, SearchFilter(available_only=True), SearchFilter(min_price=20, max_price=60)],
)
def test_answers_match_the_exact_reference(filled, flt):
    milvus, exact, _, queries = filled
    for query in queries:
        ours = milvus.search(query, k=10, filters=flt)
        reference = exact.search(query, k=10, filters=flt)
        assert [m.item_id for m in ours] == [m.item_id for m in reference]
        np.testing.assert_allclose([m.score for m in ours], [m.score for m in reference], atol=1e-4)
        assert len(ours) == 10


def test_items_without_price_fail_price_filters_and_metadata_round_trips(filled):
    milvus, _, _, queries = filled
    matches = milvus.search(queries[0], k=200, filters=SearchFilter(max_price=1e9))
    assert matches and all(m.price is not None for m in matches)
    first = next(m for m in milvus.search(queries[0], k=200) if m.item_id == "sku-9")
    assert first.price is None and first.name == "Item 9" and first.available is False


def test_remove_and_upsert_replace_an_items_vectors(filled):
    milvus, _, items, queries = filled
    assert len(milvus) == 120 and "sku-5" in milvus
    milvus.remove(["sku-5"])
    assert "sku-5" not in milvus and len(milvus) == 119
    milvus.upsert([items[7]], [queries[1]])  # sku-7 now holds the query itself
    best = milvus.search(queries[1], k=1)[0]
    assert best.item_id == "sku-7" and best.score == pytest.approx(1.0, abs=1e-5)


def test_each_model_has_its_own_collection(uri):
    items, sets, queries = _catalog(10)
    a = MilvusIndex(uri=uri, model_id="efficientnet-lite0-rgem-fp32-aaa", dim=DIM)
    b = MilvusIndex(uri=uri, model_id="efficientnet-lite0-gap-fp32-bbb", dim=DIM)
    a.upsert(items, sets)
    assert len(a) == 10 and len(b) == 0 and b.search(queries[0], k=3) == []
    a.close()
    a.close()  # a second close is a no-op
    reopened = MilvusIndex(uri=uri, model_id="efficientnet-lite0-rgem-fp32-aaa", dim=DIM)
    assert len(reopened) == 10
    for index in (b, reopened):
        index.close()


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    """A real Milvus standalone (PyPI ``milvus`` 2.3.x in its own venv; see
    edgelens.testing.milvus), on free ports, about 7 s to start."""
    from edgelens.testing.milvus import MilvusServer, find_server_executable

    executable = find_server_executable()
    if executable is None:
        pytest.skip("no milvus-server (set EDGELENS_MILVUS_SERVER)")
    with MilvusServer(executable, tmp_path_factory.mktemp("milvus-server")) as server:
        yield server


def test_a_real_milvus_server_with_an_hnsw_index(milvus_server):
    items, sets, queries = _catalog(120)
    milvus = MilvusIndex(
        uri=milvus_server.uri,
        model_id="model-hnsw",
        dim=DIM,
        max_views=3,
        index_type="HNSW",
        index_params={"M": 16, "efConstruction": 64},
        search_params={"ef": 64},
    )
    milvus.upsert(items, sets)
    milvus.flush()
    exact = ExactIndex("model-hnsw", DIM)
    exact.upsert(items, sets)
    for flt in (None, SearchFilter(available_only=True, min_price=20, max_price=60)):
        for query in queries:
            ours = milvus.search(query, k=10, filters=flt)
            reference = exact.search(query, k=10, filters=flt)
            assert [m.item_id for m in ours] == [m.item_id for m in reference]
    assert len(milvus) == 120
    milvus.remove(["sku-5"])
    milvus.upsert([items[7]], [queries[1]])
    assert "sku-5" not in milvus and len(milvus) == 119
    best = milvus.search(queries[1], k=1)[0]
    assert best.item_id == "sku-7" and best.score == pytest.approx(1.0, abs=1e-5)
    milvus.close()


KILLED_STARTER = """
import sys, time
from pathlib import Path
from edgelens.testing.milvus import MilvusServer
server = MilvusServer(Path(sys.argv[1]), Path(sys.argv[2])).__enter__()
print(server.pid, server.server_pid(), flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux parent-death signal")
def test_a_milvus_server_exits_when_its_starter_is_killed(tmp_path):
    """Both the launcher and the server binary it runs, though the starter never stops them."""
    from edgelens.testing.milvus import find_server_executable

    executable = find_server_executable()
    if executable is None:
        pytest.skip("no milvus-server (set EDGELENS_MILVUS_SERVER)")
    running, left = kill_starter(
        [sys.executable, "-c", KILLED_STARTER, str(executable), str(tmp_path / "data")],
        wait_s=30,
    )
    assert len(running) == 2 and left == []


def test_an_item_with_many_photos_does_not_crowd_out_the_others(uri):
    """Two items each with MAX_PHOTOS photos' rows near the query fill the first k * views
    rows; the search looks further and still answers k items, as the exact index does."""
    from edgelens.catalog.models import MAX_PHOTOS

    items, sets, queries = _catalog(30, seed=3)
    query = queries[0]
    for n in (0, 1):  # rows all nearer the query than any other item's
        near = query + np.random.default_rng(n).normal(scale=0.05, size=(3 * MAX_PHOTOS, DIM))
        sets[n] = (near / np.linalg.norm(near, axis=1, keepdims=True)).astype(np.float32)
    milvus = MilvusIndex(uri=uri, model_id="model-a", dim=DIM, max_views=3)
    milvus.upsert(items, sets)
    exact = ExactIndex("model-a", DIM)
    exact.upsert(items, sets)
    ours = milvus.search(query, k=4)
    assert [m.item_id for m in ours] == [m.item_id for m in exact.search(query, k=4)]
    assert len(ours) == 4 and {"sku-0", "sku-1"} <= {m.item_id for m in ours[:2]}
    milvus.close()
