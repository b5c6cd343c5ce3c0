"""`edgelens catalog migrate --to`: a SQLite catalog copied onto PostgreSQL, row for row."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.models import Correction
from edgelens.catalog.store import CatalogStore
from edgelens.cli.main import app
from edgelens.featurizer.local_features import METHOD_ID
from edgelens.testing.live import add_photo_item

RECIPE = CatalogRecipe(2)


@pytest.fixture
def catalog_backend() -> str:
    return "sqlite"  # the source; the target is a PostgreSQL database


def _everything(store: CatalogStore, model_id: str):
    """What a worker and the web app read of a catalog."""
    items, matrices = store.vectors(model_id, RECIPE.recipe_id)
    ids = [item.item_id for item in store.items()]
    keypoints = store.photos_local_features(ids, METHOD_ID)
    return (
        store.items(),
        {i: store.photos(i) for i in ids},
        [item.item_id for item in items],
        [m.tobytes() for m in matrices],
        {i: [(sha, f.to_blobs()) for sha, f in kept] for i, kept in keypoints.items()},
        store.changes_since(0),
        store.corrections(),
        store.version,
    )


def test_a_sqlite_catalog_is_copied_whole_and_goes_on_from_there(
    settings, featurizer, tmp_path, postgres_server
):
    source = CatalogStore(settings.catalog_url)
    for item_id, photo in (("mug", "coffee"), ("toy", "rocket"), ("cat", "chelsea")):
        add_photo_item(source, featurizer, settings, tmp_path, item_id, photo, recipe=RECIPE)
    source.remove(["cat"])
    with source.transaction() as write:
        write.log_correction(Correction(0, time.time(), "ann", "cam-1", 7, "mug", None))
    before = _everything(source, featurizer.model_id)
    url = postgres_server.new_database()

    result = CliRunner().invoke(app, ["catalog", "migrate", "--to", url])
    assert result.exit_code == 0, result.output
    assert "2 item(s), 2 photo(s)" in result.output and "counts checked" in result.output

    target = CatalogStore(url)
    try:
        assert _everything(target, featurizer.model_id) == before
        assert target.restore("cat").item_id == "cat", "the deleted item can still come back"
        assert target.last_change > before[5][-1][0], "new changes are numbered past the copy"
        with target.transaction() as write:
            copied = write.log_correction(Correction(0, time.time(), "bo", "cam-2", 8, None, None))
        assert copied.correction_id > before[6][0].correction_id
    finally:
        target.close()
        source.close()


def test_a_catalog_is_never_copied_over_another(settings, featurizer, tmp_path, postgres_server):
    source = CatalogStore(settings.catalog_url)
    add_photo_item(source, featurizer, settings, tmp_path, "mug", "coffee", recipe=RECIPE)
    url = postgres_server.new_database()
    other = CatalogStore(url)
    add_photo_item(other, featurizer, settings, tmp_path, "toy", "rocket", recipe=RECIPE)
    held = _everything(other, featurizer.model_id)

    result = CliRunner().invoke(app, ["catalog", "migrate", "--to", url])
    assert result.exit_code != 0
    assert "not empty" in result.output and "copy into a new database" in result.output
    assert _everything(other, featurizer.model_id) == held
    other.close()
    source.close()
