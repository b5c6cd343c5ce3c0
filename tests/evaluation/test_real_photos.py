"""Retrieval on real photographs: camera-like views and the real stereo second view."""

import cv2
import pytest

from edgelens.catalog.sources import collect_sources
from edgelens.evaluation.runner import Query, catalog_index, evaluate, synthetic_queries
from edgelens.evaluation.sample_photos import SAMPLE_PHOTOS, load_motorcycle_right_view


@pytest.fixture(scope="module")
def indexed(featurizer, sample_catalog):
    return catalog_index(featurizer, collect_sources([sample_catalog]))


def test_catalog_index_holds_every_sample_photo(indexed):
    index, images = indexed
    assert len(index) == len(SAMPLE_PHOTOS) == len(images)


def test_camera_views_of_real_photos_find_their_item(featurizer, indexed):
    index, images = indexed
    queries = synthetic_queries(images, views_per_image=4, seed=2024)
    metrics = evaluate(featurizer, index, queries)
    assert metrics.queries == 4 * len(SAMPLE_PHOTOS)
    assert metrics.top1 >= 0.85
    assert metrics.top5 >= 0.95
    assert metrics.top1 <= metrics.top5 <= metrics.recall_at_10


def test_the_real_second_view_of_the_motorcycle(featurizer, indexed):
    index, _ = indexed
    right = load_motorcycle_right_view()
    metrics = evaluate(featurizer, index, [Query("motorcycle", right, "stereo right")])
    assert metrics.top1 == 1.0


def test_evaluate_refuses_queries_for_unknown_items(featurizer, indexed):
    index, images = indexed
    from edgelens.errors import EdgelensError

    with pytest.raises(EdgelensError, match="missing from the catalog"):
        evaluate(featurizer, index, [Query("unicorn", images["coffee"], "x")])


def test_query_folder_layout(tmp_path, featurizer, indexed):
    from edgelens.evaluation.runner import folder_queries

    index, images = indexed
    (tmp_path / "coffee").mkdir()
    cv2.imwrite(str(tmp_path / "coffee" / "1.jpg"), images["coffee"])
    (tmp_path / "coffee" / "broken.jpg").write_bytes(b"junk")
    queries = folder_queries(tmp_path)
    assert [q.item_id for q in queries] == ["coffee"]
    assert evaluate(featurizer, index, queries).top1 == 1.0
