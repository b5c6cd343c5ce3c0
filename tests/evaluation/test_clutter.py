import numpy as np

from edgelens.evaluation.clutter import clutter_view
from edgelens.evaluation.runner import clutter_queries
from edgelens.evaluation.sample_photos import load_photo
from edgelens.evaluation.views import FRAME_SIZE


def test_clutter_views_are_seeded_frames_built_from_other_photos():
    item = load_photo("coffee")
    backgrounds = [load_photo(n) for n in ("rocket", "coins")]
    first = clutter_view(item, backgrounds, np.random.default_rng(9))
    again = clutter_view(item, backgrounds, np.random.default_rng(9))
    other = clutter_view(item, backgrounds, np.random.default_rng(10))
    width, height = FRAME_SIZE
    assert first.shape == (height, width, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_clutter_queries_label_each_item_and_never_use_it_as_background():
    images = {n: load_photo(n) for n in ("coffee", "rocket", "clock")}
    queries = clutter_queries(images, views_per_image=2, seed=1)
    assert [q.item_id for q in queries] == ["clock"] * 2 + ["coffee"] * 2 + ["rocket"] * 2
    assert all(q.origin.startswith(f"clutter:{q.item_id}:") for q in queries)


def test_clutter_queries_can_be_built_from_photos_outside_the_catalog():
    images = {n: load_photo(n) for n in ("coffee", "rocket")}
    green = np.zeros((200, 300, 3), np.uint8)
    green[..., 1] = 200
    queries = clutter_queries(images, views_per_image=2, seed=1, backgrounds=[green])
    for query in queries:  # outside the item and its shadow, every pixel is the green photo
        corners = query.image_bgr[[0, 0, -1, -1], [0, -1, 0, -1]].astype(int)
        assert (corners[:, 1] > 120).all() and (corners[:, [0, 2]] < 80).all()
    catalog_built = clutter_queries(images, views_per_image=2, seed=1)
    assert not np.array_equal(queries[0].image_bgr, catalog_built[0].image_bgr)
