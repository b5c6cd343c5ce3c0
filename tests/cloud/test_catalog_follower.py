"""Catalog changes reach a running worker's index through the change log, woken by Redis."""

from __future__ import annotations

import functools
import time

import pytest

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.notify import notify_catalog_changed
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.catalog_follower import CatalogFollower
from edgelens.samples.photos import load_photo
from edgelens.testing.catalog import index_from_catalog
from edgelens.testing.live import add_photo_item, wait_for

RECIPE = CatalogRecipe(2)  # small: these tests are about changes, not quality


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store(settings):
    catalog = CatalogStore(settings.catalog_url)
    yield catalog
    catalog.close()


_add = functools.partial(add_photo_item, recipe=RECIPE)


def _follower(store, featurizer, redis_url, poll_s):
    after = store.last_change
    index = index_from_catalog(
        store, model_id=featurizer.model_id, dim=featurizer.dim, recipe=RECIPE
    )
    return index, CatalogFollower(
        store=store, index=index, recipe=RECIPE, after_seq=after, poll_s=poll_s, redis_url=redis_url
    )


def test_the_change_log_records_every_change_in_order(store, featurizer, settings, tmp_path):
    start = store.last_change
    _add(store, featurizer, settings, tmp_path, "mug", "coffee", price=3.0)
    store.remove(["mug"])
    assert [(op, item) for _, item, op in store.changes_since(start)] == [
        ("upsert", "mug"),
        ("remove", "mug"),
    ]


def test_a_notified_change_is_applied_without_waiting_for_the_poll(
    store, featurizer, settings, tmp_path, redis_server
):
    _add(store, featurizer, settings, tmp_path, "mug", "coffee", price=3.0)
    index, follower = _follower(store, featurizer, redis_server.url, poll_s=60.0)
    follower.start()
    try:
        time.sleep(0.3)  # the subscription is live
        _add(store, featurizer, settings, tmp_path, "rocket", "rocket", price=9.0)
        notify_catalog_changed(store=store, redis_url=redis_server.url)
        wait_for(lambda: "rocket" in index)  # a 60 s poll would not have done it
        store.remove(["mug"])
        notify_catalog_changed(store=store, redis_url=redis_server.url)
        wait_for(lambda: "mug" not in index)
        assert len(index) == 1
    finally:
        follower.stop()


def test_without_redis_the_poll_still_applies_changes(store, featurizer, settings, tmp_path):
    index, follower = _follower(store, featurizer, "redis://127.0.0.1:1/0", poll_s=0.2)
    follower.start()
    try:
        _add(store, featurizer, settings, tmp_path, "clock", "clock", price=20.0)
        wait_for(lambda: "clock" in index)
    finally:
        follower.stop()


@pytest.mark.parametrize("catalog_backend", ["postgresql"])
def test_a_postgresql_catalog_wakes_its_followers_itself(store, featurizer, settings, tmp_path):
    """No Redis and a 60 s poll: the database's own NOTIFY brings the change."""
    index, follower = _follower(store, featurizer, "redis://127.0.0.1:1/0", poll_s=60.0)
    follower.start()
    try:
        _add(store, featurizer, settings, tmp_path, "rocket", "rocket", price=9.0)
        wait_for(lambda: "rocket" in index)
        store.remove(["rocket"])
        wait_for(lambda: "rocket" not in index)
    finally:
        follower.stop()


def test_metadata_edits_change_what_filters_let_through(store, featurizer, settings, tmp_path):
    from edgelens.search.base import SearchFilter

    _add(store, featurizer, settings, tmp_path, "mug", "coffee", price=3.0, available=True)
    index, follower = _follower(store, featurizer, "redis://127.0.0.1:1/0", poll_s=60.0)
    query = featurizer.embed([load_photo("coffee")])[0]
    assert index.search(query, k=1, filters=SearchFilter(available_only=True))
    _add(store, featurizer, settings, tmp_path, "mug", "coffee", available=False)
    assert follower.apply_pending() == 1
    assert index.search(query, k=1, filters=SearchFilter(available_only=True)) == []
