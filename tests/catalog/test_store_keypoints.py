"""Catalog keypoints: the batch read the worker uses, and the migration of old rows."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from edgelens.catalog import schema
from edgelens.catalog.ingest import migrate_keypoints
from edgelens.catalog.models import CatalogItem
from edgelens.catalog.store import CatalogStore, CatalogWrite
from edgelens.cli.main import app
from edgelens.errors import CatalogError
from edgelens.featurizer.local_features import (
    CATALOG_KEYPOINTS,
    CATALOG_MIN_SIDE,
    EARLIER_METHOD_IDS,
    LEGACY_METHOD_ID,
    MAX_KEYPOINTS,
    MAX_SIDE,
    METHOD_ID,
    LocalFeatures,
    catalog_local_features,
    extract_local_features,
    keep_largest,
    legacy_to_blobs,
    sift_keypoints,
)
from edgelens.featurizer.preprocess import decode_image
from edgelens.samples.photos import load_photo
from edgelens.samples.views import pack_shot
from edgelens.testing.catalog import first_photo_keypoints

PHOTOS = ("coffee", "rocket", "astronaut")


def _add_photo(store: CatalogStore, images_dir: Path, name: str, item_ids: list[str]) -> str:
    """An item per id showing the photo, its image file stored as ingest stores it."""
    data = cv2.imencode(".png", load_photo(name))[1].tobytes()
    sha = hashlib.sha256(data).hexdigest()
    image_file = f"{sha[:2]}/{sha}.png"
    (images_dir / sha[:2]).mkdir(parents=True, exist_ok=True)
    (images_dir / image_file).write_bytes(data)
    with store.transaction() as write:
        for item_id in item_ids:
            write.upsert(CatalogItem(item_id, item_id, 1.0, "EUR", True, sha, image_file))
    return sha


def _put_old_row(store: CatalogStore, images_dir: Path, sha: str) -> LocalFeatures:
    """The keypoints an earlier version stored for the photo (1000 SIFT, full precision)."""
    image = decode_image(next((images_dir / sha[:2]).glob(f"{sha}.*")).read_bytes())
    old = extract_local_features(image)
    with store.transaction() as write:
        xy, descriptors = legacy_to_blobs(old)
        write.connection.execute(
            insert(schema.local_features).values(
                image_sha256=sha, method=LEGACY_METHOD_ID, xy=xy, descriptors=descriptors
            )
        )
    return old


def _put(store: CatalogStore, sha: str, name: str) -> None:
    with store.transaction() as write:
        write.put_local_features(sha, METHOD_ID, catalog_local_features(load_photo(name)))


def test_the_batch_read_gives_what_single_reads_give(store, tmp_path):
    images = tmp_path / "images"
    coffee = _add_photo(store, images, "coffee", ["a", "b"])  # one photo, two items
    rocket = _add_photo(store, images, "rocket", ["c"])
    _add_photo(store, images, "astronaut", ["bare"])  # no keypoints stored
    _put(store, coffee, "coffee")
    _put(store, rocket, "rocket")

    found = first_photo_keypoints(store, ["a", "b", "c", "bare", "ghost", "a"], METHOD_ID)
    assert set(found) == {"a", "b", "c"}
    assert found["a"] is found["b"], "a photo shown by two items is decoded once"
    for item_id in ("a", "c"):
        single = first_photo_keypoints(store, [item_id], METHOD_ID).get(item_id)
        assert single is not None and single.to_blobs() == found[item_id].to_blobs()
        np.testing.assert_array_equal(single.xy_n2, found[item_id].xy_n2)
    assert first_photo_keypoints(store, ["bare"], METHOD_ID).get("bare") is None
    assert first_photo_keypoints(store, ["a", "c"], "another-method") == {}
    assert first_photo_keypoints(store, [], METHOD_ID) == {}


def test_the_batch_read_takes_more_items_than_one_query_binds(store, tmp_path):
    images = tmp_path / "images"
    ids = [f"item-{i:04d}" for i in range(1200)]
    sha = _add_photo(store, images, "coffee", ids[:-1])
    _put(store, sha, "coffee")
    found = first_photo_keypoints(store, ids, METHOD_ID)
    assert len(found) == len(ids) - 1 and ids[-1] not in found


def test_migration_re_extracts_every_old_row_and_the_counts_match(store, tmp_path):
    images = tmp_path / "images"
    shas = {name: _add_photo(store, images, name, [name]) for name in PHOTOS}
    olds = {name: _put_old_row(store, images, sha) for name, sha in shas.items()}
    _put(store, shas["rocket"], "rocket")  # imported again after an upgrade: both rows
    (images / shas["astronaut"][:2] / f"{shas['astronaut']}.png").unlink()  # its image lost
    seq = store.last_change
    advanced = []

    report = migrate_keypoints(store=store, images_dir=images, batch=2, progress=advanced.append)

    assert (report.old_rows, report.rows_before) == (3, 1)
    assert (report.from_images, report.from_rows, report.already) == (1, 1, 1)
    assert (report.old_rows_left, report.rows_after) == (0, 3)
    assert sum(advanced) == 3
    assert store.local_features_counts() == {METHOD_ID: 3}
    found = first_photo_keypoints(store, list(PHOTOS), METHOD_ID)
    # re-extracted: exactly what an import of the photo stores today
    assert found["coffee"].to_blobs() == catalog_local_features(load_photo("coffee")).to_blobs()
    # no image: the old row's first keypoints, coded
    astronaut = found["astronaut"]
    assert len(astronaut) == CATALOG_KEYPOINTS < len(olds["astronaut"])
    np.testing.assert_array_equal(
        astronaut.xy_n2, np.rint(olds["astronaut"].xy_n2[:CATALOG_KEYPOINTS])
    )
    changed = {item_id for _, item_id, _ in store.changes_since(seq)}
    assert changed == set(PHOTOS), "running workers are told to read them again"

    again = migrate_keypoints(store=store, images_dir=images)
    assert (again.old_rows, again.made, again.rows_after) == (0, 0, 3)


def test_a_migration_that_does_not_add_up_fails(store, tmp_path, monkeypatch):
    images = tmp_path / "images"
    sha = _add_photo(store, images, "coffee", ["coffee"])
    _put_old_row(store, images, sha)
    monkeypatch.setattr(CatalogWrite, "put_local_features", lambda *args: None)
    with pytest.raises(CatalogError, match="does not add up"):
        migrate_keypoints(store=store, images_dir=images)


def test_the_migrate_keypoints_command(settings):
    store = CatalogStore(settings.catalog_url)
    sha = _add_photo(store, settings.images_dir, "coffee", ["coffee"])
    _put_old_row(store, settings.images_dir, sha)
    result = CliRunner().invoke(app, ["catalog", "migrate-keypoints"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"keypoints {LEGACY_METHOD_ID} -> {METHOD_ID}: 1 photo(s)" in result.output
    assert f"{METHOD_ID} now 1, {LEGACY_METHOD_ID} left 0" in result.output
    assert store.local_features_counts() == {METHOD_ID: 1}
    store.close()


COMPACT_V2 = EARLIER_METHOD_IDS[1]


def _put_compact_row(store: CatalogStore, sha: str, image: np.ndarray) -> LocalFeatures:
    """What the compact method before stored: never enlarging a small photo."""
    features, sizes = sift_keypoints(image, MAX_KEYPOINTS, MAX_SIDE)
    kept = LocalFeatures.from_blobs(*keep_largest(features, sizes).to_blobs())
    with store.transaction() as write:
        write.put_local_features(sha, COMPACT_V2, kept)
    return kept


def test_small_photos_get_their_keypoints_enlarged_and_old_rows_migrate(settings):
    """A 200 px pack shot: the current method extracts it enlarged to CATALOG_MIN_SIDE and
    finds far more keypoints; the migration re-makes compact rows from the stored images
    (a photo whose image is lost keeps its row), one line per earlier method."""
    store = CatalogStore(settings.catalog_url)
    images = settings.images_dir
    small = {"rocket": pack_shot(load_photo("rocket")), "text": pack_shot(load_photo("text"))}
    shas, olds = {}, {}
    for name, image in small.items():
        data = cv2.imencode(".png", image)[1].tobytes()
        sha = shas[name] = hashlib.sha256(data).hexdigest()
        (images / sha[:2]).mkdir(parents=True, exist_ok=True)
        (images / sha[:2] / f"{sha}.png").write_bytes(data)
        with store.transaction() as write:
            write.upsert(CatalogItem(name, name, 1.0, "EUR", True, sha, f"{sha[:2]}/{sha}.png"))
        olds[name] = _put_compact_row(store, sha, image)
    legacy = _add_photo(store, images, "coffee", ["coffee"])
    _put_old_row(store, images, legacy)
    assert max(small["rocket"].shape[:2]) < CATALOG_MIN_SIDE
    assert len(catalog_local_features(small["rocket"])) > 2 * len(olds["rocket"])
    (images / shas["text"][:2] / f"{shas['text']}.png").unlink()  # its image lost

    result = CliRunner().invoke(app, ["catalog", "migrate-keypoints"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert f"keypoints {LEGACY_METHOD_ID} -> {METHOD_ID}: 1 photo(s)" in result.output
    assert f"keypoints {COMPACT_V2} -> {METHOD_ID}: 2 photo(s); re-extracted 1, " in result.output
    assert store.local_features_counts() == {METHOD_ID: 3}
    found = first_photo_keypoints(store, ["rocket", "text"], METHOD_ID)
    assert found["rocket"].to_blobs() == catalog_local_features(small["rocket"]).to_blobs()
    assert found["text"].to_blobs() == olds["text"].to_blobs()
    again = CliRunner().invoke(app, ["catalog", "migrate-keypoints"], catch_exceptions=False)
    assert f"keypoints are {METHOD_ID} already" in again.output
    store.close()
