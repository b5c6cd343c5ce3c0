"""The worker's keypoint cache against a real catalog file: batches, bounds, freshness."""

import cv2

from edgelens.catalog.ingest import add_items
from edgelens.catalog.models import ItemSource
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.keypoints import KeypointCache
from edgelens.evaluation.sample_photos import load_photo
from edgelens.featurizer import local_features


def _add(store, featurizer, settings, tmp_path, item_id, photo):
    path = tmp_path / f"{item_id}-{photo}.png"
    cv2.imwrite(str(path), load_photo(photo))
    add_items(
        store=store,
        featurizer=featurizer,
        images_dir=settings.images_dir,
        sources=[ItemSource(item_id, path)],
    )


def test_the_cache_reads_what_it_lacks_in_one_batch_and_forgets_changed_items(
    settings, featurizer, tmp_path
):
    store = CatalogStore(settings.catalog_db)
    for item_id, photo in (("cup", "coffee"), ("rocket", "rocket"), ("cat", "chelsea")):
        _add(store, featurizer, settings, tmp_path, item_id, photo)
    cache = KeypointCache(store, capacity=2)
    found = cache(["cup", "rocket", "nothing-here"])
    assert set(found) == {"cup", "rocket"} and cache.loads == 1
    single = store.item_local_features("cup", local_features.METHOD_ID)
    assert (found["cup"].xy_n2 == single.xy_n2).all(), "the batch reads what one read does"
    assert set(cache(["rocket"])) == {"rocket"} and cache.loads == 1, "held: no read"
    assert len(cache) == 2, "bounded: the least recently used went"
    cache(["cat"])
    assert cache.loads == 2
    _add(store, featurizer, settings, tmp_path, "cat", "coffee")  # a new photo of the cat item
    assert (cache(["cat"])["cat"].xy_n2 == single.xy_n2).all(), "the changed item is read again"
    assert cache.loads == 3
    store.remove(["cat"])
    assert cache(["cat"]) == {}
    store.close()
