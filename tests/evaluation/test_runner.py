import dataclasses

import cv2
import numpy as np

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.sources import collect_sources
from edgelens.evaluation.runner import (
    VIEW_SENT,
    CatalogCache,
    Miss,
    Query,
    Ranked,
    System,
    folder_queries,
    load_catalog,
    metrics_of,
    misses_of,
    rank_queries,
    synthetic_queries,
    system_answerer,
)
from edgelens.settings import Settings
from edgelens.wire.records import Decision

_PIXELS = np.zeros((4, 4, 3), np.uint8)


def _query(item_id: str, origin: str, also_in_view: frozenset[str] = frozenset()) -> Query:
    return Query(item_id, _PIXELS, origin, also_in_view)


def test_misses_name_each_query_not_answered_first_with_what_beat_it():
    rankings = [
        Ranked(_query("mug", "q/mug/1.jpg"), ["mug", "cup", "bowl", "vase", "jar"]),
        Ranked(_query("cup", "q/cup/1.jpg"), ["mug", "bowl", "vase", "jar", "cup"]),
        Ranked(_query("bowl", "q/bowl/1.jpg"), ["mug", "bowl", "cup", "vase", "jar"]),
    ]
    assert misses_of(rankings) == (
        Miss("q/cup/1.jpg", "cup", 5, ("mug", "bowl", "vase")),
        Miss("q/bowl/1.jpg", "bowl", 2, ("mug",)),
    )
    assert len(misses_of(rankings)) == round((1 - metrics_of(rankings).top1) * len(rankings))


def test_misses_judged_without_the_items_in_view_when_those_are_ignored():
    in_clutter = _query("cup", "clutter 1", frozenset({"mug"}))
    rankings = [Ranked(in_clutter, ["mug", "cup", "bowl"])]
    assert misses_of(rankings) == (Miss("clutter 1", "cup", 2, ("mug",)),)
    assert misses_of(rankings, ignore_in_view=True) == ()


def test_a_known_item_answered_no_match_is_wrong_at_top1_and_listed():
    """The product's answer: the right item ranked first but "no match" said is a miss."""
    rankings = [
        Ranked(_query("mug", "q/mug/1.jpg"), ["mug", "cup"], Decision.NO_MATCH),
        Ranked(_query("cup", "q/cup/1.jpg"), ["cup", "mug"]),
    ]
    metrics = metrics_of(rankings)
    assert (metrics.top1, metrics.top1_ranked, metrics.no_match_known) == (0.5, 1.0, 0.5)
    assert misses_of(rankings) == (Miss("q/mug/1.jpg", "mug", 0, ("no match",)),)


def test_eval_sends_each_query_as_the_device_settings_say(featurizer, chelsea):
    """Vectors go through the wire in the device's dtype, the view within its byte budget:
    what the worker decodes is what eval answers from."""
    from edgelens.evaluation.runner import DeviceSends, sent_queries
    from edgelens.settings import DeviceSettings
    from edgelens.wire.features import WireDtype

    query = Query("cat", chelsea, "chelsea")
    raw = featurizer.embed([chelsea])[0]
    assert DeviceSends().wire_dtype == WireDtype.parse(DeviceSettings().wire_dtype)
    plain = DeviceSends.of(DeviceSettings(send_view=False, wire_dtype="float16"))
    (fp16,) = sent_queries(featurizer, [query], sends=plain)
    assert len(fp16.vectors) == 1 and fp16.view is None
    assert fp16.vectors[0].dtype == np.float32 and np.abs(fp16.vectors[0] - raw).max() < 1e-3
    int8 = DeviceSends(view=True, focus=True, view_bytes=4096, wire_dtype=WireDtype.INT8)
    (sent,) = sent_queries(featurizer, [query], sends=int8)
    assert len(sent.vectors) == 2 and max(sent.view.shape[:2]) <= 400
    error = np.abs(sent.vectors[0] - raw).max()
    assert 0 < error <= np.abs(raw).max() / 127, "quantised to int8 steps, no further"


def test_systems_over_the_same_photos_featurize_the_catalog_once(featurizer, sample_catalog):
    """A second system with the catalog's model and recipe reuses the photos' vector rows and
    keypoints; another recipe, or other photos (other pixels under the same sha256 too),
    are featurized anew. The answers, both stages, are the same as from a cache of their
    own."""
    photos = load_catalog(collect_sources([sample_catalog]))[:6]
    embedded: list[int] = []

    class Counting:
        def __getattr__(self, name):
            return getattr(featurizer, name)

        def embed(self, images):
            embedded.append(len(images))
            return featurizer.embed(images)

    counting = Counting()
    product = System.product("edgelens", counting, Settings())
    # Every view confirmed, so the answers below use the cached keypoints too.
    product = dataclasses.replace(
        product, policy=dataclasses.replace(product.policy, confirm_margin=2.0)
    )
    cache = CatalogCache()
    first = system_answerer(product, photos, cache)
    rows = sum(embedded)
    assert rows == len(photos) * Settings().catalog.views and len(cache.keypoints) == len(photos)
    again = system_answerer(dataclasses.replace(product, name="again"), photos, cache)
    assert sum(embedded) == rows, "nothing featurized again"
    system_answerer(dataclasses.replace(product, recipe=CatalogRecipe(1)), photos, cache)
    assert sum(embedded) == rows + len(photos), "one view a photo, its own rows"
    system_answerer(product, photos[:3], cache)
    assert sum(embedded) == rows + len(photos) + 3 * Settings().catalog.views
    # Photos derived from these (smaller, as pack shots are) keep their sha256: their
    # pixels tell them apart.
    smaller = [dataclasses.replace(p, image_bgr=p.image_bgr[::2, ::2].copy()) for p in photos]
    system_answerer(product, smaller, cache)
    assert sum(embedded) == 2 * rows + len(photos) + 3 * Settings().catalog.views
    assert len(cache.keypoints) == 2 * len(photos)
    queries = synthetic_queries({p.item.item_id: p.image_bgr for p in photos}, 1, seed=3)
    fresh = system_answerer(product, photos, CatalogCache())
    answers = [
        [(r.ranked, r.decision) for r in rank_queries(featurizer, a, queries, sends=VIEW_SENT)]
        for a in (first, again, fresh)
    ]
    assert answers[0] == answers[1] == answers[2]


def test_a_folder_of_queries_holds_files_not_pixels_and_is_answered_as_held(
    featurizer, sample_catalog, tmp_path
):
    """A folder of thousands of photos must not be held decoded all at once: each query
    holds its file and is read when answered, with the same answers as the pixels held; a
    file that is not an image is left out when the folder is listed."""
    photos = load_catalog(collect_sources([sample_catalog]))[:4]
    views = synthetic_queries({p.item.item_id: p.image_bgr for p in photos}, 2, seed=5)
    written = {}
    for n, view in enumerate(views):
        (tmp_path / view.item_id).mkdir(exist_ok=True)
        path = tmp_path / view.item_id / f"{n}.png"
        cv2.imwrite(str(path), view.image_bgr)  # lossless
        written[str(path)] = view.image_bgr
    (tmp_path / photos[0].item.item_id / "notes.jpg").write_text("not an image")
    queries = folder_queries(tmp_path)
    assert len(queries) == len(views) == 8
    assert all(q.image_bgr is None and q.path is not None for q in queries)
    held = [dataclasses.replace(q, image_bgr=q.image()) for q in queries]
    assert all(np.array_equal(h.image_bgr, written[h.origin]) for h in held)
    product = System.product("edgelens", featurizer, Settings())
    answerer = system_answerer(product, photos, CatalogCache())
    answers = [
        [(r.ranked, r.decision) for r in rank_queries(featurizer, answerer, q, sends=VIEW_SENT)]
        for q in (queries, held)
    ]
    assert answers[0] == answers[1]
