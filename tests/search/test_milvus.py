"""The Milvus backend against a real embedded Milvus (milvus-lite): the same answers as the
exact reference, filters inside the search, multi-vector items, removal, model separation."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import numpy as np
import pytest

from edgelens.catalog.models import CatalogItem
from edgelens.errors import SearchError
from edgelens.search.base import SearchFilter
from edgelens.search.exact import ExactIndex
from edgelens.testing.processes import kill_starter

pytest.importorskip("pymilvus", reason="the [vectordb] extra")
from edgelens.search import milvus
from edgelens.search.milvus import MilvusIndex, search_params

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


def test_a_name_or_currency_longer_than_the_collection_holds_is_cut_to_fit(uri):
    """The catalog sets no length; the collection's fields do (milvus.NAME_BYTES): the
    item is indexed all the same, its name cut on a character boundary."""
    index = MilvusIndex(uri=uri, model_id="model-a", dim=DIM, max_views=1)
    name = "x" * (milvus.NAME_BYTES - 1) + "ééé"
    vector = np.ones((1, DIM), np.float32) / np.sqrt(DIM)
    index.upsert([CatalogItem("long", name, 2.0, "C" * 40, True, "", "")], [vector])
    (found,) = index.search(vector[0], k=1)
    assert found.item_id == "long"
    assert found.name == "x" * (milvus.NAME_BYTES - 1), "no half of an é"
    assert found.currency == "C" * milvus.CURRENCY_BYTES
    index.close()


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


def test_a_search_under_a_filter_uses_the_filtered_search_params(milvus_server):
    """Only a filtered search gets them: here a range search that keeps near-copies only."""
    items, sets, _ = _catalog(30)
    near_copies = {"ef": 64, "radius": 0.99, "range_filter": 1.01}
    milvus = _server_index(milvus_server, "model-filtered", filtered_search_params=near_copies)
    milvus.upsert(items, sets)
    milvus.flush()
    query = sets[1][0]  # a row of sku-1, an available item
    assert len(milvus.search(query, k=5)) == 5
    narrowed = milvus.search(query, k=5, filters=SearchFilter(available_only=True))
    assert [m.item_id for m in narrowed] == ["sku-1"]
    milvus.close()


@pytest.mark.parametrize(
    ("params", "limit", "sent"),
    [
        ({"ef": 256}, 120, {"ef": 256}),
        ({"ef": 64}, 120, {"ef": 120}),  # the server refuses fewer than the rows asked for
        ({"nprobe": 32}, 120, {"nprobe": 32}),
    ],
)
def test_hnsw_ef_is_never_below_the_rows_asked_for(params, limit, sent):
    assert search_params(params, limit=limit) == sent


def _server_index(server, model_id: str, **kwargs) -> MilvusIndex:
    return MilvusIndex(
        uri=server.uri,
        model_id=model_id,
        dim=DIM,
        max_views=3,
        index_type="HNSW",
        index_params={"M": 16, "efConstruction": 64},
        search_params={"ef": 64},
        **kwargs,
    )


def _unindexed_collection(server, model_id: str):
    """A client, and the collection of ``model_id`` as a worker leaves it between creating
    it and creating its index."""
    from pymilvus import DataType, MilvusClient

    first = _server_index(server, model_id)
    collection = first.collection
    first.close()
    client = MilvusClient(server.uri)
    client.drop_collection(collection)
    schema = client.create_schema(auto_id=True, enable_dynamic_field=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    for name in ("item_id", "name", "currency"):
        schema.add_field(name, DataType.VARCHAR, max_length=128)
    schema.add_field("price", DataType.DOUBLE)
    for name in ("has_price", "available"):
        schema.add_field(name, DataType.BOOL)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection(collection, schema=schema)
    return client, collection


def _serves(index: MilvusIndex) -> None:
    items, sets, _ = _catalog(5)
    index.upsert(items, sets)
    index.flush()
    assert len(index) == 5 and index.search(sets[2][0], k=1)[0].item_id == "sku-2"


def test_a_collection_another_worker_is_still_indexing_is_opened_once_indexed(milvus_server):
    """Two workers start at once against an empty server: the second finds the collection
    the first has just created, before its index exists, and waits for it."""
    client, collection = _unindexed_collection(milvus_server, "racing-model")
    index = client.prepare_index_params()
    params = {"M": 16, "efConstruction": 64}
    index.add_index(field_name="vector", index_type="HNSW", metric_type="IP", params=params)
    indexer = threading.Timer(2.0, lambda: client.create_index(collection, index))
    _opens_and_serves_beside(milvus_server, "racing-model", indexer, then=client.close)


def test_a_collection_whose_creator_died_before_indexing_it_is_indexed_by_the_next(
    milvus_server, monkeypatch
):
    client, _ = _unindexed_collection(milvus_server, "orphaned-model")
    client.close()
    monkeypatch.setattr(milvus, "_INDEX_WAIT_S", 1.0)
    opened = _server_index(milvus_server, "orphaned-model")
    _serves(opened)
    opened.close()


def test_a_new_collection_another_worker_releases_while_its_creator_loads_it_opens(
    milvus_server,
):
    """Two workers create one new collection at once; the other's bulk load releases it
    while this one's load waits (code 101, 'collection not loaded'): the load is tried
    again, the opener does not fail. Here a client releases it for three seconds."""
    from pymilvus import MilvusClient

    collection, stop = "edgelens_released_model", threading.Event()

    def release() -> None:
        client = MilvusClient(milvus_server.uri)
        while not stop.wait(0.05):
            if client.has_collection(collection):
                client.release_collection(collection)
        client.close()

    threading.Timer(3.0, stop.set).start()
    _opens_and_serves_beside(milvus_server, "released-model", threading.Thread(target=release))


def _opens_and_serves_beside(
    milvus_server, model: str, beside: threading.Thread, *, then: Callable[[], None] | None = None
) -> None:
    """Open ``model``'s index while ``beside`` (another worker's doing) runs, wait for that
    to end, ``then`` clean up, and check the index serves."""
    beside.start()
    try:
        opened = _server_index(milvus_server, model)
    finally:
        beside.join()
        if then is not None:
            then()
    _serves(opened)
    opened.close()


def _same_answers(milvus: MilvusIndex, exact: ExactIndex, queries: np.ndarray) -> None:
    for flt in (None, SearchFilter(available_only=True, min_price=20, max_price=60)):
        for query in queries:
            ours = milvus.search(query, k=10, filters=flt)
            reference = exact.search(query, k=10, filters=flt)
            assert [m.item_id for m in ours] == [m.item_id for m in reference]
            np.testing.assert_allclose(
                [m.score for m in ours], [m.score for m in reference], atol=1e-4
            )


def test_a_bulk_load_goes_through_the_servers_bulk_insert_and_search_finds_it(
    milvus_server, tmp_path
):
    """Several bulk-insert tasks (a small task size), each item's several rows, non-ASCII
    names and a missing price: every row searchable when bulk_load returns, the staged
    files gone, and the collection takes upserts and removals afterwards."""
    import edgelens.search.milvus as milvus_module

    items, sets, queries = _catalog(150, seed=5)
    items[4] = CatalogItem("sku-4", "Crème brûlée — 焼き菓子", None, "EUR", True, "", "")
    milvus = _server_index(milvus_server, "model-bulk")
    exact = ExactIndex("model-bulk", DIM)
    exact.upsert(items, sets)
    counted: list[int] = []
    staging = tmp_path / "staging"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(milvus_module, "_BULK_TASK_BYTES", 60 * 3 * DIM * 4)  # 60 items a task
        report = milvus.bulk_load(items, sets, progress=counted.append, staging_dir=staging)
    assert report.path == "bulk insert" and report.rows == 450 and sum(counted) == 450
    assert counted == [180, 180, 90] and list(staging.iterdir()) == []
    assert len(milvus) == 150
    _same_answers(milvus, exact, queries)
    first = next(m for m in milvus.search(sets[4][0], k=3) if m.item_id == "sku-4")
    assert first.name == "Crème brûlée — 焼き菓子" and first.price is None and first.available
    milvus.remove(["sku-5"])
    milvus.upsert([items[7]], [queries[1]])
    assert "sku-5" not in milvus and len(milvus) == 149
    assert milvus.search(queries[1], k=1)[0].item_id == "sku-7"
    with pytest.raises(SearchError, match="not empty"):
        milvus.bulk_load(items[:1], sets[:1], staging_dir=staging)
    milvus.close()


def test_a_bulk_load_the_server_cannot_read_goes_in_as_insert_requests(milvus_server, tmp_path):
    """The first file set unreadable by the server (here: removed before it reads it):
    nothing of it stored, the rows go as column-wise insert requests instead."""
    import edgelens.search.milvus as milvus_module

    write_columns = milvus_module._write_columns

    def unreadable(entries, folder):
        files, rows = write_columns(entries, folder)
        (folder / "vector.npy").unlink()
        return files, rows

    items, sets, queries = _catalog(120, seed=6)
    milvus = _server_index(milvus_server, "model-fallback")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(milvus_module, "_write_columns", unreadable)
        patch.setattr(milvus_module, "_INSERT_REQUEST_BYTES", 25 * 3 * DIM * 4)  # 5 requests
        report = milvus.bulk_load(items, sets, staging_dir=tmp_path)
    assert report.path == "insert" and report.rows == 360
    exact = ExactIndex("model-fallback", DIM)
    exact.upsert(items, sets)
    assert len(milvus) == 120
    _same_answers(milvus, exact, queries)
    milvus.close()


def test_a_bulk_load_into_milvus_lite_and_an_upsert_of_many_requests(uri):
    """milvus-lite has no files to read: insert requests; an upsert larger than one request
    is cut into several, and replacing items leaves one copy of each."""
    import edgelens.search.milvus as milvus_module

    items, sets, queries = _catalog(60, seed=7)
    milvus = MilvusIndex(uri=uri, model_id="model-a", dim=DIM, max_views=3)
    assert milvus.bulk_load(items[:30], sets[:30]).path == "insert"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(milvus_module, "_INSERT_REQUEST_BYTES", 7 * 3 * DIM * 4)
        milvus.upsert(items, sets)  # 30 replaced, 30 new
    exact = ExactIndex("model-a", DIM)
    exact.upsert(items, sets)
    assert len(milvus) == 60
    hits = milvus._rows(queries[0], 1000, None)
    assert len(hits) == 180  # no row twice
    _same_answers(milvus, exact, queries)
    milvus.close()


def test_the_loader_fills_a_new_collection_by_bulk_insert(
    milvus_server, redis_server, tmp_path, caplog
):
    """Two workers open an empty collection at once: one loads the catalog's vectors the
    fast way, through the staging folder it is given (search.milvus_staging_dir), while the
    other waits for its writer lease, then finds them there and loads nothing."""
    import functools
    import logging
    import threading

    import redis

    from edgelens.catalog.augment import CatalogRecipe
    from edgelens.cloud.index_writer import filling_alone
    from edgelens.search.loader import open_index

    items, sets, queries = _catalog(80, seed=8)

    class Store:  # what open_index reads of the catalog store
        last_change = 41

        def vectors(self, model_id, recipe_id):
            return items, sets

    client = redis.Redis.from_url(redis_server.url)
    guard = functools.partial(filling_alone, client, ttl_s=2.0, stop=threading.Event())

    def opened():
        return open_index(
            Store(),
            model_id="model-loader",
            dim=DIM,
            recipe=CatalogRecipe(views=3),
            backend="milvus",
            ann_min_vectors=0,
            index_dir=tmp_path,
            milvus_uri=milvus_server.uri,
            milvus_staging_dir=tmp_path / "staging",
            fill_alone=guard,
        )

    with caplog.at_level(logging.INFO, logger="edgelens.search"):
        other: list = []
        beside = threading.Thread(target=lambda: other.append(opened()))
        beside.start()
        first = opened()
        beside.join()
    ours = [r for r in caplog.records if r.name.startswith("edgelens.")]  # not pymilvus's
    loads = [r for r in ours if "loading" in r.getMessage()]
    assert len(loads) == 1 and any("by bulk insert" in r.getMessage() for r in ours)
    assert first.change_seq == 41 and len(first.index) == len(other[0].index) == 80
    assert first.shared_index == other[0].shared_index
    assert client.get(f"edgelens:index-seq:{first.shared_index}") == b"41"
    assert (tmp_path / "staging").is_dir() and not any((tmp_path / "staging").iterdir())
    exact = ExactIndex("model-loader", DIM)
    exact.upsert(items, sets)
    for query in queries:
        ours = first.index.search(query, k=5)
        assert [m.item_id for m in ours] == [m.item_id for m in exact.search(query, k=5)]
    other[0].index.close()
    first.index.close()
    client.close()


def test_an_hnsw_search_for_more_rows_than_ef(milvus_server):
    """The server refuses a search for more rows than ``ef`` (an item's views times k is
    often more): the index asks with ``ef`` raised to the rows wanted."""
    rng = np.random.default_rng(9)
    vectors = rng.normal(size=(1500, DIM)).astype(np.float32)  # indexed: 1,024 rows or more
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [
        CatalogItem(f"sku-{i}", f"Item {i}", float(i), "EUR", True, "", "") for i in range(1500)
    ]
    milvus = _server_index(milvus_server, "model-ef")  # ef 64, 3 views: k 30 wants 90 rows
    milvus.bulk_load(items, list(vectors))
    exact = ExactIndex("model-ef", DIM)
    exact.upsert(items, list(vectors))
    ours = milvus.search(vectors[0], k=30)
    expected = {m.item_id for m in exact.search(vectors[0], k=30)}
    assert len(ours) == 30 and len(expected & {m.item_id for m in ours}) >= 27
    milvus.close()
