import numpy as np

from edgelens.evaluation.clutter import clutter_view
from edgelens.evaluation.runner import Query, Ranked, clutter_queries, metrics_of
from edgelens.samples.photos import load_photo
from edgelens.samples.views import FRAME_SIZE


def test_clutter_views_are_seeded_frames_built_from_other_photos():
    item = load_photo("coffee")
    backgrounds = [load_photo(n) for n in ("rocket", "coins")]
    first = clutter_view(item, backgrounds, np.random.default_rng(9))
    again = clutter_view(item, backgrounds, np.random.default_rng(9))
    other = clutter_view(item, backgrounds, np.random.default_rng(10))
    width, height = FRAME_SIZE
    assert first.image_bgr.shape == (height, width, 3) and first.image_bgr.dtype == np.uint8
    assert np.array_equal(first.image_bgr, again.image_bgr)
    assert not np.array_equal(first.image_bgr, other.image_bgr)
    assert first.background_indexes == again.background_indexes


def test_clutter_views_report_the_photos_they_show():
    """Solid red, green and blue backgrounds: each frame corner the item does not cover
    shows a background the view reports, and no view reports one more than four tiles."""
    backgrounds = []
    for channel in range(3):
        solid = np.zeros((120, 160, 3), np.uint8)
        solid[..., 2 - channel] = 230  # BGR: red, green, blue
        backgrounds.append(solid)
    item = np.full((100, 100, 3), 128, np.uint8)
    seen_any = False
    for seed in range(6):
        view = clutter_view(item, backgrounds, np.random.default_rng(seed))
        corners = view.image_bgr[[0, 0, -1, -1], [0, -1, 0, -1]].astype(int)
        shown = {2 - int(c.argmax()) for c in corners if c.max() - np.median(c) > 100}
        assert shown <= view.background_indexes
        assert 1 <= len(view.background_indexes) <= 4
        seen_any |= bool(shown)
    assert seen_any


def test_clutter_queries_label_each_item_and_never_use_it_as_background():
    images = {n: load_photo(n) for n in ("coffee", "rocket", "clock")}
    queries = clutter_queries(images, views_per_image=2, seed=1)
    assert [q.item_id for q in queries] == ["clock"] * 2 + ["coffee"] * 2 + ["rocket"] * 2
    assert all(q.origin.startswith(f"clutter:{q.item_id}:") for q in queries)
    # Each frame names the other catalog items it shows, never its own.
    assert all(q.also_in_view and q.also_in_view <= set(images) - {q.item_id} for q in queries)


def test_clutter_queries_can_be_built_from_photos_outside_the_catalog():
    images = {n: load_photo(n) for n in ("coffee", "rocket")}
    green = np.zeros((200, 300, 3), np.uint8)
    green[..., 1] = 200
    queries = clutter_queries(images, views_per_image=2, seed=1, backgrounds=[green])
    for query in queries:  # outside the item and its shadow, every pixel is the green photo
        corners = query.image_bgr[[0, 0, -1, -1], [0, -1, 0, -1]].astype(int)
        assert (corners[:, 1] > 120).all() and (corners[:, [0, 2]] < 80).all()
    assert not any(q.also_in_view for q in queries)  # nothing of the catalog besides the item
    catalog_built = clutter_queries(images, views_per_image=2, seed=1)
    assert not np.array_equal(queries[0].image_bgr, catalog_built[0].image_bgr)


def test_items_in_view_count_only_where_asked():
    """The strict figures count another catalog item in view as a miss; the "in view
    ignored" ones take it out of the ranking, and still count one that is not in view."""
    image = np.zeros((8, 8, 3), np.uint8)
    rankings = [
        Ranked(Query("coffee", image, "a", frozenset({"rocket"})), ["rocket", "coffee", "clock"]),
        Ranked(Query("clock", image, "b", frozenset({"rocket"})), ["coffee", "clock", "rocket"]),
    ]
    assert metrics_of(rankings).top1 == 0.0
    lenient = metrics_of(rankings, ignore_in_view=True)
    assert lenient.top1 == 0.5 and lenient.map == 0.75
