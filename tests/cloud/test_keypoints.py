"""The worker's keypoint cache against a real catalog file: batches, bounds, freshness."""

import functools
import logging

import cv2
import numpy as np
import pytest

from edgelens.catalog.augment import DEFAULT_RECIPE
from edgelens.catalog.ingest import add_items
from edgelens.catalog.models import ItemSource
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.keypoints import KeypointCache
from edgelens.featurizer import local_features
from edgelens.samples.photos import load_photo
from edgelens.testing.catalog import first_photo_keypoints


def _add(store, featurizer, settings, tmp_path, item_id, photo):
    path = tmp_path / f"{item_id}-{photo}.png"
    cv2.imwrite(str(path), load_photo(photo))
    add_items(
        store=store,
        featurizer=featurizer,
        images_dir=settings.images_dir,
        sources=[ItemSource(item_id, (path,))],
    )


@pytest.mark.parametrize("catalog_backend", ["sqlite", "postgresql"])
def test_the_cache_reads_what_it_lacks_in_one_batch_and_forgets_changed_items(
    settings, featurizer, tmp_path
):
    store = CatalogStore(settings.catalog_url)
    for item_id, photo in (("cup", "coffee"), ("rocket", "rocket"), ("cat", "chelsea")):
        _add(store, featurizer, settings, tmp_path, item_id, photo)
    cache = KeypointCache(
        store,
        model_id=featurizer.model_id,
        recipe_id=DEFAULT_RECIPE.recipe_id,
        dim=featurizer.dim,
        capacity=2,
    )
    found = cache(["cup", "rocket", "nothing-here"])
    assert set(found) == {"cup", "rocket"} and cache.loads == 1
    single = first_photo_keypoints(store, ["cup"], local_features.METHOD_ID).get("cup")
    (cup,) = found["cup"]
    assert (cup.features.xy_n2 == single.xy_n2).all(), "the batch reads what one read does"
    _, (vectors,) = store.vectors(featurizer.model_id, DEFAULT_RECIPE.recipe_id, ["cup"])
    np.testing.assert_array_equal(cup.vectors, vectors)  # the rows the index holds
    assert set(cache(["rocket"])) == {"rocket"} and cache.loads == 1, "held: no read"
    assert len(cache) == 2, "bounded: the least recently used went"
    cache(["cat"])
    assert cache.loads == 2
    _add(store, featurizer, settings, tmp_path, "cat", "coffee")  # a new photo of the cat item
    (cat,) = cache(["cat"])["cat"]
    assert (cat.features.xy_n2 == single.xy_n2).all(), "the changed item is read again"
    assert cache.loads == 3
    store.remove(["cat"])
    assert cache(["cat"]) == {}
    store.close()


def test_keypoints_of_an_earlier_method_are_reported_when_the_worker_opens_the_catalog(
    settings, featurizer, tmp_path, caplog
):
    """A catalog from an earlier release: the worker reads only the current method's
    keypoints, so it says which photos it cannot verify and how to re-make them."""
    store = CatalogStore(settings.catalog_url)
    _add(store, featurizer, settings, tmp_path, "cup", "coffee")
    _add(store, featurizer, settings, tmp_path, "cat", "chelsea")
    open_cache = functools.partial(
        KeypointCache,
        store,
        model_id=featurizer.model_id,
        recipe_id=DEFAULT_RECIPE.recipe_id,
        dim=featurizer.dim,
    )
    with caplog.at_level(logging.WARNING, logger="edgelens.cloud.keypoints"):
        open_cache()
    assert not caplog.records, "a current catalog: nothing to say"

    ((sha, current),) = store.photos_local_features(["cat"], local_features.METHOD_ID)["cat"]
    earlier = local_features.EARLIER_METHOD_IDS[-1]
    with store.transaction() as write:
        write.replace_local_features(sha, local_features.METHOD_ID, earlier, current)
    with caplog.at_level(logging.WARNING, logger="edgelens.cloud.keypoints"):
        cache = open_cache()
    (record,) = caplog.records
    assert f"keypoints of 1 catalog photo(s) are of an earlier method ({earlier})" in (
        record.getMessage()
    )
    assert "edgelens catalog migrate-keypoints" in record.getMessage()
    assert set(cache(["cup", "cat"])) == {"cup"}, "the cat's photo is not verifiable as it is"
    store.close()
