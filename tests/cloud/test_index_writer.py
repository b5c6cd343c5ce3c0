"""A shared index (one Milvus collection for every worker) is written by one worker at a
time, the holder of a Redis lease; another takes over when it stops or dies, and picks up
from the change the collection was recorded at, including changes made while none ran."""

from __future__ import annotations

import functools
import threading
import time

import pytest
import redis

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.catalog_follower import CatalogFollower
from edgelens.cloud.index_writer import IndexWriterLease, filling_alone
from edgelens.errors import SearchError
from edgelens.testing.live import add_photo_item

RECIPE = CatalogRecipe(1)
SHARED = "edgelens_test@milvus.db"


@pytest.fixture
def client(redis_server):
    connection = redis.Redis.from_url(redis_server.url)
    yield connection
    connection.close()


def test_one_holder_at_a_time_and_a_successor_after_release(client):
    first = IndexWriterLease(client, shared_index=SHARED, ttl_s=5.0)
    second = IndexWriterLease(client, shared_index=SHARED, ttl_s=5.0)
    assert first.hold() and not second.hold()
    assert first.hold()  # renewing keeps it
    first.release()
    assert second.hold() and not first.hold()


def test_a_holder_that_stops_renewing_loses_the_lease_after_its_ttl(client):
    crashed = IndexWriterLease(client, shared_index=SHARED, ttl_s=0.3)
    successor = IndexWriterLease(client, shared_index=SHARED, ttl_s=0.3)
    assert crashed.hold()
    assert not successor.hold()
    time.sleep(0.45)
    assert successor.hold()
    assert not crashed.hold()  # it finds out at its next renewal


def test_leases_of_two_shared_indexes_are_independent(client):
    one = IndexWriterLease(client, shared_index="a@x", ttl_s=5.0)
    other = IndexWriterLease(client, shared_index="b@x", ttl_s=5.0)
    assert one.hold() and other.hold()
    one.record(7)
    assert one.applied_seq() == 7 and other.applied_seq() is None


def test_a_first_fill_is_done_alone_and_outlasts_the_ttl(client):
    """One worker fills a new shared index (longer than the lease's TTL: it is renewed);
    another waits, then finds the lease free and the change the fill reflects recorded."""
    ttl_s, stop = 0.3, threading.Event()
    events: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with filling_alone(client, SHARED, 41, ttl_s=ttl_s, stop=stop):
            first_in.set()
            events.append("first fills")
            time.sleep(4 * ttl_s)
            events.append("first filled")

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in.wait(5)
    with filling_alone(client, SHARED, 42, ttl_s=ttl_s, stop=stop):
        events.append("second in")
        assert IndexWriterLease(client, shared_index=SHARED, ttl_s=ttl_s).applied_seq() == 41
    thread.join()
    assert events == ["first fills", "first filled", "second in"]
    assert IndexWriterLease(client, shared_index=SHARED, ttl_s=ttl_s).hold(), "released"


def test_a_worker_stopped_while_waiting_to_fill_gives_up(client):
    holder = IndexWriterLease(client, shared_index=SHARED, ttl_s=5.0)
    assert holder.hold()
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    waiting = filling_alone(client, SHARED, 1, ttl_s=0.3, stop=stop)
    with pytest.raises(SearchError, match="stopped while waiting"), waiting:
        pytest.fail("filled while another worker held the lease")


@pytest.fixture
def store(settings):
    catalog = CatalogStore(settings.catalog_url)
    yield catalog
    catalog.close()


@pytest.fixture
def milvus_uri(tmp_path):
    pytest.importorskip("pymilvus", reason="the [vectordb] extra")
    uri = str(tmp_path / "milvus.db")
    yield uri
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)


_add = functools.partial(add_photo_item, recipe=RECIPE)


def _worker_follower(store, featurizer, milvus_uri, redis_url):
    """What a worker on the Milvus backend runs: its client of the one shared collection
    and a follower that may write it."""
    from edgelens.search.milvus import MilvusIndex

    index = MilvusIndex(uri=milvus_uri, model_id=featurizer.model_id, dim=featurizer.dim)
    follower = CatalogFollower(
        store=store,
        index=index,
        recipe=RECIPE,
        after_seq=store.last_change,
        poll_s=60.0,
        redis_url=redis_url,
        shared_index=SHARED,
    )
    return index, follower


def test_only_the_writer_applies_changes_and_a_successor_resumes_where_it_stopped(
    store, featurizer, settings, tmp_path, redis_server, milvus_uri
):
    index, first = _worker_follower(store, featurizer, milvus_uri, redis_server.url)
    _, second = _worker_follower(store, featurizer, milvus_uri, redis_server.url)

    _add(store, featurizer, settings, tmp_path, "mug", "coffee")
    assert first.apply_pending() == 1  # the first to ask is the writer
    assert second.apply_pending() == 0  # the change is not written a second time...
    assert second.applied_seq == first.applied_seq == store.last_change  # ...but seen
    assert "mug" in index
    assert first.lease.held and not second.lease.held

    first.stop()  # hands the lease on
    _add(store, featurizer, settings, tmp_path, "clock", "clock")
    assert second.apply_pending() == 1
    assert "clock" in index and second.lease.held
    second.stop()

    # Changes made while no worker runs are applied by the next one, although it opens
    # the catalog after them: it resumes from the change the collection is recorded at.
    store.remove(["mug"])
    _add(store, featurizer, settings, tmp_path, "rocket", "rocket")
    _, late = _worker_follower(store, featurizer, milvus_uri, redis_server.url)
    assert late.applied_seq == store.last_change  # what a plain follower would start from
    assert late.apply_pending() == 2
    assert "mug" not in index and "rocket" in index
    late.stop()
