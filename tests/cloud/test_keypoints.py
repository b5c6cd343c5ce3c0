"""The worker's keypoint cache against a real catalog file: batches, bounds, freshness."""

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
