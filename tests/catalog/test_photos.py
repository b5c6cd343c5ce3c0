"""Several photos per item: import, add, remove, the index's rows, and old catalogs."""

import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgelens.catalog.augment import DEFAULT_RECIPE
from edgelens.catalog.ingest import add_items
from edgelens.catalog.models import MAX_PHOTOS, CatalogItem, ItemSource, PhotoOrigin
from edgelens.catalog.sources import collect_sources
from edgelens.catalog.store import CatalogStore
from edgelens.errors import ItemNotFoundError, LastPhotoError
from edgelens.featurizer import local_features
from edgelens.samples.photos import load_photo
from edgelens.search.exact import ExactIndex

RECIPE = DEFAULT_RECIPE.recipe_id


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    files = {}
    for name in ("coffee", "rocket", "chelsea", "astronaut"):
        files[name] = folder / f"{name}.png"
        cv2.imwrite(str(files[name]), load_photo(name))
    return files


def _add(store, featurizer, tmp_path, item_id, *paths, origin=PhotoOrigin.IMPORT):
    return add_items(
        store=store,
        featurizer=featurizer,
        sources=[ItemSource(item_id, tuple(paths), origin=origin)],
        images_dir=tmp_path / "images",
    )


def _origins(store, item_id):
    return [p.origin for p in store.photos(item_id)]


def test_an_item_folder_imports_every_photo_and_the_index_holds_their_rows(
    store, featurizer, tmp_path, photo_files
):
    folder = tmp_path / "items"
    for item_id, names in {"mug": ("coffee", "chelsea"), "toy": ("rocket",)}.items():
        (folder / item_id).mkdir(parents=True)
        for name in names:
            (folder / item_id / f"{name}.png").write_bytes(photo_files[name].read_bytes())
    report = add_items(
        store=store,
        featurizer=featurizer,
        sources=collect_sources([folder]),
        images_dir=tmp_path / "images",
    )
    assert (report.added, report.featurized) == (2, 3)
    assert store.photo_counts() == (2, 3)
    mug = store.photos("mug")
    assert len(mug) == 2 and store.get("mug").image_sha256 == mug[0].image_sha256, "cover first"

    items, matrices = store.vectors(featurizer.model_id, RECIPE)
    rows = dict(zip([i.item_id for i in items], matrices, strict=True))
    per_photo = store.photo_vectors(featurizer.model_id, RECIPE, [p.image_sha256 for p in mug])
    np.testing.assert_array_equal(
        rows["mug"], np.concatenate([per_photo[p.image_sha256] for p in mug])
    )
    # the item scores its best photo: a view of the cat finds the mug item, as of its
    # second photo, first
    index = ExactIndex(featurizer.model_id, featurizer.dim)
    index.upsert(items, matrices)
    (best, *_) = index.search(featurizer.embed([load_photo("chelsea")])[0], k=2)
    assert best.item_id == "mug"


def test_an_import_replaces_imported_photos_and_keeps_added_ones(
    store, featurizer, tmp_path, photo_files
):
    _add(store, featurizer, tmp_path, "mug", photo_files["coffee"], photo_files["rocket"])
    _add(store, featurizer, tmp_path, "mug", photo_files["chelsea"], origin=PhotoOrigin.ADDED)
    assert _origins(store, "mug") == [PhotoOrigin.IMPORT, PhotoOrigin.IMPORT, PhotoOrigin.ADDED]
    cover = store.get("mug").image_sha256

    again = _add(store, featurizer, tmp_path, "mug", photo_files["coffee"], photo_files["rocket"])
    assert again.unchanged == 1 and again.featurized == 0, "the same import changes nothing"

    _add(store, featurizer, tmp_path, "mug", photo_files["coffee"])  # rocket dropped
    photos = store.photos("mug")
    assert len(photos) == 2 and _origins(store, "mug") == [PhotoOrigin.IMPORT, PhotoOrigin.ADDED]
    assert store.get("mug").image_sha256 == cover, "the cover stays while it is a photo"

    _add(store, featurizer, tmp_path, "mug", photo_files["astronaut"])  # a new front photo
    assert store.get("mug").image_sha256 != cover
    assert {p.image_sha256 for p in store.photos("mug")} == {
        store.get("mug").image_sha256,
        photos[1].image_sha256,  # the added photo stayed through both imports
    }


def test_corrections_give_no_index_rows_nor_keypoints_while_the_item_has_other_photos(
    store, featurizer, tmp_path, photo_files
):
    """The answer searches a correction's view, not its photo: the index holds the item's
    other photos' rows and stage two their keypoints, or the corrections' when nothing
    else is left."""
    _add(store, featurizer, tmp_path, "mug", photo_files["coffee"])
    alone = store.vectors(featurizer.model_id, RECIPE)[1][0]
    _add(store, featurizer, tmp_path, "mug", photo_files["chelsea"], origin=PhotoOrigin.CORRECTION)
    np.testing.assert_array_equal(store.vectors(featurizer.model_id, RECIPE)[1][0], alone)
    cover, correction = store.photos("mug")
    verified = store.photos_local_features(["mug"], local_features.METHOD_ID)["mug"]
    assert [sha for sha, _ in verified] == [cover.image_sha256]

    with store.transaction() as write:
        write.remove_photo("mug", cover.image_sha256)
    (rows,) = store.vectors(featurizer.model_id, RECIPE)[1]
    cached = store.photo_vectors(featurizer.model_id, RECIPE, [correction.image_sha256])
    np.testing.assert_array_equal(rows, cached[correction.image_sha256])
    verified = store.photos_local_features(["mug"], local_features.METHOD_ID)["mug"]
    assert [sha for sha, _ in verified] == [correction.image_sha256]


def test_an_item_holds_at_most_max_photos(store, featurizer, tmp_path, photo_files):
    base = load_photo("coffee")
    paths = []
    for n in range(MAX_PHOTOS + 1):
        paths.append(tmp_path / f"shot-{n}.png")
        cv2.imwrite(str(paths[-1]), np.roll(base, 7 * n, axis=1))
    report = _add(store, featurizer, tmp_path, "mug", *paths[:MAX_PHOTOS])
    assert report.added == 1 and len(store.photos("mug")) == MAX_PHOTOS
    version = store.version
    refused = _add(store, featurizer, tmp_path, "mug", paths[-1], origin=PhotoOrigin.ADDED)
    assert refused.failed and f"it can hold {MAX_PHOTOS}" in refused.failed[0][1]
    assert len(store.photos("mug")) == MAX_PHOTOS
    assert store.version == version + 1, "only the cached vectors were written"


def test_removing_a_photo_moves_the_cover_and_never_takes_the_last(
    store, featurizer, tmp_path, photo_files
):
    _add(store, featurizer, tmp_path, "mug", photo_files["coffee"], photo_files["rocket"])
    first, second = store.photos("mug")
    seq = store.last_change
    with store.transaction() as write:
        cover = write.remove_photo("mug", first.image_sha256)
    assert cover == second and store.get("mug").image_sha256 == second.image_sha256
    assert [(item, op) for _, item, op in store.changes_since(seq)] == [("mug", "upsert")]
    with pytest.raises(LastPhotoError), store.transaction() as write:
        write.remove_photo("mug", second.image_sha256)
    with pytest.raises(ItemNotFoundError), store.transaction() as write:
        write.remove_photo("mug", first.image_sha256)
    with pytest.raises(ItemNotFoundError), store.transaction() as write:
        write.remove_photo("ghost", first.image_sha256)
    store.remove(["mug"])
    assert store.photos("mug") == [] and store.photo_counts() == (0, 0)


def test_a_catalog_from_before_photos_migrates_without_featurizing(
    featurizer, tmp_path, photo_files
):
    path = tmp_path / "catalog.sqlite3"
    store = CatalogStore(path)
    _add(store, featurizer, tmp_path, "mug", photo_files["coffee"])
    _add(store, featurizer, tmp_path, "toy", photo_files["rocket"])
    before = store.vectors(featurizer.model_id, RECIPE)
    store.close()
    with sqlite3.connect(path) as conn:  # as an earlier version left it: no photos table
        conn.execute("DROP TABLE photos")
        conn.execute("DELETE FROM meta WHERE key = 'photos'")

    migrated = CatalogStore(path)
    assert migrated.photo_counts() == (2, 2)
    (photo,) = migrated.photos("mug")
    item = migrated.get("mug")
    assert (photo.image_sha256, photo.image_file) == (item.image_sha256, item.image_file)
    after = migrated.vectors(featurizer.model_id, RECIPE)
    assert after[0] == before[0]
    for old, new in zip(before[1], after[1], strict=True):
        np.testing.assert_array_equal(old, new)
    report = _add(migrated, featurizer, tmp_path, "mug", photo_files["coffee"])
    assert report.featurized == 0 and report.unchanged == 1
    migrated.close()


def test_an_item_stored_directly_has_its_cover_as_photo(store):
    with store.transaction() as write:
        write.upsert(CatalogItem("mug", "Mug", None, "EUR", True, "a" * 64, "aa/a.png"))
    (photo,) = store.photos("mug")
    assert (photo.image_sha256, photo.origin) == ("a" * 64, PhotoOrigin.IMPORT)
