"""The catalog import: vector cache, model separation, corrupt input, identical preprocessing."""

import cv2
import numpy as np
import pytest
from sqlalchemy import delete

from edgelens.catalog import schema
from edgelens.catalog.augment import DEFAULT_RECIPE
from edgelens.catalog.ingest import add_items, reindex
from edgelens.catalog.models import ItemSource
from edgelens.catalog.sources import collect_sources
from edgelens.featurizer import local_features
from edgelens.samples.photos import load_photo
from edgelens.testing.catalog import first_photo_keypoints

# Featurizing and image storage are the same whatever the engine: these run on SQLite only
# (the others, the catalog's own writes, on both).
SQLITE_ONLY = pytest.mark.parametrize("catalog_backend", ["sqlite"])


def _add(store, featurizer, sources, tmp_path):
    return add_items(
        store=store, featurizer=featurizer, sources=sources, images_dir=tmp_path / "images"
    )


def test_readding_and_reindexing_featurize_nothing(store, featurizer, sample_catalog, tmp_path):
    sources = collect_sources([sample_catalog])
    first = _add(store, featurizer, sources, tmp_path)
    assert (first.added, first.featurized, first.cached) == (len(sources), len(sources), 0)

    again = _add(store, featurizer, collect_sources([sample_catalog.parent]), tmp_path)
    assert again.featurized == 0 and again.cached == len(sources)
    assert again.unchanged == len(sources), "re-adding a folder keeps the manifest's metadata"
    assert store.get("coffee").name == "Coffee cup"

    again = reindex(store=store, featurizer=featurizer, images_dir=tmp_path / "images")
    assert again.featurized == 0 and again.cached == len(sources)


@SQLITE_ONLY
def test_same_image_under_two_ids_is_featurized_once(store, featurizer, tmp_path, chelsea):
    path = tmp_path / "cat.png"
    cv2.imwrite(str(path), chelsea)
    report = _add(store, featurizer, [ItemSource("a", (path,)), ItemSource("b", (path,))], tmp_path)
    assert report.added == 2 and report.featurized == 1 and report.cached == 1


@SQLITE_ONLY
def test_a_new_model_refeaturizes_and_never_mixes(store, featurizers, sample_catalog, tmp_path):
    fp32, int8 = featurizers["fp32"], featurizers["int8"]
    sources = collect_sources([sample_catalog])
    _add(store, fp32, sources, tmp_path)
    report = reindex(store=store, featurizer=int8, images_dir=tmp_path / "images")
    assert report.featurized == len(sources)
    recipe = DEFAULT_RECIPE.recipe_id
    assert store.models() == {
        (fp32.model_id, recipe): len(sources),
        (int8.model_id, recipe): len(sources),
    }
    items32, vectors32 = store.vectors(fp32.model_id, recipe)
    items8, vectors8 = store.vectors(int8.model_id, recipe)
    assert [i.item_id for i in items32] == [i.item_id for i in items8]
    assert not np.array_equal(vectors32[0], vectors8[0])
    assert store.vectors("some-other-model", recipe)[0] == []


@SQLITE_ONLY
def test_catalog_vector_equals_the_camera_frame_vector(store, featurizer, tmp_path, chelsea):
    """The catalog path (file → decode) and the frame path (BGR array) give the same vector."""
    path = tmp_path / "cat.png"
    cv2.imwrite(str(path), chelsea)
    _add(store, featurizer, [ItemSource("cat", (path,))], tmp_path)
    _, (matrix,) = store.vectors(featurizer.model_id, DEFAULT_RECIPE.recipe_id)
    frame_vector = featurizer.embed([chelsea])[0]
    np.testing.assert_array_equal(matrix[0], frame_vector)  # the photo comes first


@SQLITE_ONLY
def test_corrupt_images_are_reported_and_the_rest_goes_on(store, featurizer, tmp_path):
    good = tmp_path / "coffee.png"
    cv2.imwrite(str(good), load_photo("coffee"))
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    missing = tmp_path / "gone.png"
    sources = [
        ItemSource("broken", (corrupt,)),
        ItemSource("coffee", (good,)),
        ItemSource("gone", (missing,)),
    ]
    report = _add(store, featurizer, sources, tmp_path)
    assert report.added == 1 and [i.item_id for i in store.items()] == ["coffee"]
    failed = dict(report.failed)
    assert set(failed) == {str(corrupt), str(missing)}
    assert "not an image it can read" in failed[str(corrupt)]


@SQLITE_ONLY
def test_images_are_stored_by_content_hash(store, featurizer, tmp_path, chelsea):
    path = tmp_path / "cat.png"
    cv2.imwrite(str(path), chelsea)
    _add(store, featurizer, [ItemSource("cat", (path,))], tmp_path)
    item = store.get("cat")
    stored = tmp_path / "images" / item.image_file
    assert stored.read_bytes() == path.read_bytes()
    assert item.image_sha256 in item.image_file


def test_remove_and_version_counter(store, featurizer, sample_catalog, tmp_path):
    _add(store, featurizer, collect_sources([sample_catalog]), tmp_path)
    version = store.version
    assert store.remove(["coffee", "no-such-item"]) == ["coffee"]
    assert store.version == version + 1
    assert "coffee" not in {i.item_id for i in store.items()}
    assert "coffee" not in {
        i.item_id for i in store.vectors(featurizer.model_id, DEFAULT_RECIPE.recipe_id)[0]
    }


def test_keypoints_are_extracted_once_per_image_and_found_by_item(
    store, featurizers, tmp_path, chelsea, monkeypatch
):
    path = tmp_path / "cat.png"
    cv2.imwrite(str(path), chelsea)
    extracted = []
    real_extract = local_features.catalog_local_features
    monkeypatch.setattr(
        local_features,
        "catalog_local_features",
        lambda image: extracted.append(image.shape) or real_extract(image),
    )
    _add(store, featurizers["fp32"], [ItemSource("a", (path,)), ItemSource("b", (path,))], tmp_path)
    _add(store, featurizers["int8"], [ItemSource("a", (path,))], tmp_path)  # a new model's vectors
    assert len(extracted) == 1, "one photo, one extraction, whatever the models and ids"
    a = first_photo_keypoints(store, ["a"], local_features.METHOD_ID).get("a")
    b = first_photo_keypoints(store, ["b"], local_features.METHOD_ID).get("b")
    assert a is not None and len(a) > 100
    np.testing.assert_array_equal(a.descriptors_n128, b.descriptors_n128)
    # stored as the catalog form gives them back, which is what evaluation verifies against
    assert a.to_blobs() == local_features.catalog_local_features(chelsea).to_blobs()
    assert first_photo_keypoints(store, ["a"], "another-method").get("a") is None
    assert first_photo_keypoints(store, ["ghost"], local_features.METHOD_ID).get("ghost") is None


def test_a_catalog_from_before_keypoints_gets_them_on_reindex(store, featurizer, tmp_path, chelsea):
    path = tmp_path / "cat.png"
    cv2.imwrite(str(path), chelsea)
    _add(store, featurizer, [ItemSource("a", (path,))], tmp_path)
    with store.transaction() as write:
        write.connection.execute(delete(schema.local_features))
    assert first_photo_keypoints(store, ["a"], local_features.METHOD_ID).get("a") is None
    report = reindex(store=store, featurizer=featurizer, images_dir=tmp_path / "images")
    assert report.featurized == 0, "the vectors were cached; only the keypoints were missing"
    assert first_photo_keypoints(store, ["a"], local_features.METHOD_ID).get("a") is not None
