"""Retrieval on real photographs: camera-like views, clutter and the real stereo second view."""

import cv2
import numpy as np
import pytest

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.sources import collect_sources
from edgelens.cloud.answer import Answerer, AnswerPolicy
from edgelens.errors import EdgelensError
from edgelens.evaluation.runner import (
    DeviceSends,
    Query,
    System,
    catalog_index,
    clutter_queries,
    evaluate_systems,
    folder_queries,
    load_catalog,
    metrics_of,
    rank_queries,
    synthetic_queries,
)
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import SAMPLE_PHOTOS, load_motorcycle_right_view


def _metrics(featurizer, index, queries, *, focus: bool = False):
    """Answered by the vectors alone, or with the worker's focus boxes of the sent view."""
    policy = AnswerPolicy(top_k=5, view_focus=focus, verify=False)
    answerer = Answerer(index=index, policy=policy, embed_view=featurizer.embed)
    return metrics_of(rank_queries(featurizer, answerer, queries, sends=DeviceSends(view=focus)))


@pytest.fixture(scope="module")
def photos(sample_catalog):
    return load_catalog(collect_sources([sample_catalog]))


@pytest.fixture(scope="module")
def images(photos):
    return {p.item.item_id: p.image_bgr for p in photos}


@pytest.fixture(scope="module")
def index(featurizer, photos):
    return catalog_index(featurizer, photos)


def test_catalog_index_holds_every_photo_with_its_views(index, photos):
    assert len(index) == len(SAMPLE_PHOTOS) == len(photos)
    assert index.vector_count == len(photos) * CatalogRecipe().views


def test_camera_views_of_real_photos_find_their_item(featurizer, index, images):
    metrics = _metrics(featurizer, index, synthetic_queries(images, 4, seed=2024))
    assert metrics.queries == 4 * len(SAMPLE_PHOTOS)
    assert metrics.top1 >= 0.9
    assert metrics.top1 <= metrics.top5 <= metrics.recall_at_10


def test_the_real_second_view_of_the_motorcycle(featurizer, index):
    right = load_motorcycle_right_view()
    metrics = _metrics(featurizer, index, [Query("motorcycle", right, "stereo right")])
    assert metrics.top1 == 1.0


def test_product_descriptor_beats_the_plain_baseline_in_clutter(
    models_dir, featurizer, photos, images
):
    """R-GeM pooling plus catalog views against global average pooling, one vector per
    item: same catalog, same clutter views, same run."""
    baseline = Featurizer.from_models_dir(models_dir, "fp32", "gap", providers=["cpu"])
    systems = [
        System("edgelens", featurizer, CatalogRecipe()),
        System("baseline", baseline, CatalogRecipe(1)),
    ]
    clutter = {"clutter": clutter_queries(images, 3, seed=77)}
    ours, ours_in_view_ignored, plain, plain_in_view_ignored = evaluate_systems(
        systems, photos, clutter
    )
    assert ours.model_id != plain.model_id
    assert ours.metrics.map > plain.metrics.map
    assert ours.metrics.top1 > plain.metrics.top1
    # The same rankings again, without the other catalog items the frames show.
    for strict, lenient in ((ours, ours_in_view_ignored), (plain, plain_in_view_ignored)):
        assert lenient.set_name == "clutter, in view ignored"
        assert lenient.metrics.queries == strict.metrics.queries
        assert lenient.metrics.map >= strict.metrics.map


def _centred_on_a_collage(item, others):
    """The item at a fifth of a 640x480 frame, in the middle, on a 2x2 collage of others."""
    frame = np.zeros((480, 640, 3), np.uint8)
    for n, other in enumerate(others[:4]):
        y, x = divmod(n, 2)
        frame[y * 240 : (y + 1) * 240, x * 320 : (x + 1) * 320] = cv2.resize(other, (320, 240))
    w, h = int(640 * np.sqrt(0.2)), int(480 * np.sqrt(0.2))
    x0, y0 = (640 - w) // 2, (480 - h) // 2
    frame[y0 : y0 + h, x0 : x0 + w] = cv2.resize(item, (w, h))
    return frame


def test_the_focus_box_finds_a_small_item_in_the_middle_of_clutter(featurizer, index, images):
    ids = sorted(images)
    queries = [
        Query(
            item_id,
            _centred_on_a_collage(images[item_id], [images[o] for o in ids if o != item_id][n:]),
            f"centred:{item_id}",
        )
        for n, item_id in enumerate(ids)
    ]
    frame_only = _metrics(featurizer, index, queries)
    with_focus = _metrics(featurizer, index, queries, focus=True)
    assert with_focus.top1 >= frame_only.top1 and with_focus.top5 >= frame_only.top5
    assert with_focus.map > frame_only.map


def test_evaluate_refuses_queries_for_unknown_items(featurizer, index, images):
    with pytest.raises(EdgelensError, match="missing from the catalog"):
        _metrics(featurizer, index, [Query("unicorn", images["coffee"], "x")])


def test_query_folder_layout(tmp_path, featurizer, index, images):
    (tmp_path / "coffee").mkdir()
    cv2.imwrite(str(tmp_path / "coffee" / "1.jpg"), images["coffee"])
    (tmp_path / "coffee" / "broken.jpg").write_bytes(b"junk")
    queries = folder_queries(tmp_path)
    assert [q.item_id for q in queries] == ["coffee"]
    assert _metrics(featurizer, index, queries).top1 == 1.0
