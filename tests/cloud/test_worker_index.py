"""The worker's index: exact for small catalogs, a saved faiss index it restarts from."""

from __future__ import annotations

import logging

from edgelens.catalog.store import CatalogStore
from edgelens.cloud.worker import Worker
from edgelens.samples.photos import load_photo
from edgelens.search.ann import AnnIndex
from edgelens.search.exact import ExactIndex


def _with_backend(settings, backend):
    search = settings.search.model_copy(update={"backend": backend})
    return settings.model_copy(update={"search": search})


def test_small_catalogs_get_the_exact_index(live_settings):
    worker = Worker(live_settings)
    assert isinstance(worker.index, ExactIndex)
    assert len(worker.index) == 20


def test_ann_worker_restarts_from_its_saved_index_and_catches_up(live_settings, featurizer, caplog):
    settings = _with_backend(live_settings, "ann")
    first = Worker(settings)
    assert isinstance(first.index, AnnIndex) and len(first.index) == 20
    saved = list(settings.index_dir.glob("*.npz"))
    assert len(saved) == 1 and first.model_id in saved[0].name
    written = saved[0].stat().st_mtime_ns
    first.start()
    first.stop()
    assert saved[0].stat().st_mtime_ns == written, "unchanged: not written again at stop"

    store = CatalogStore(settings.catalog_url)  # a change while no worker runs
    store.remove(["coffee"])
    store.close()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = Worker(settings)
    assert "ANN index loaded" in caplog.text and "IVF" not in caplog.text, "no rebuild"
    assert "coffee" in second.index  # as saved, before catching up
    assert second.catalog.apply_pending() == 1
    assert "coffee" not in second.index
    query = featurizer.embed([load_photo("clock")])[0]
    assert second.index.search(query, k=1)[0].item_id == "clock"
    second.start()
    second.stop()
    assert saved[0].stat().st_mtime_ns != written, "caught up: saved at stop"


def test_a_new_model_is_served_once_the_catalog_holds_its_vectors(
    live_settings, featurizers, tmp_path, caplog
):
    import shutil

    from edgelens.catalog.ingest import reindex
    from edgelens.featurizer.manifest import artefact_paths

    models = tmp_path / "models"
    shutil.copytree(live_settings.model_path, models)
    settings = live_settings.model_copy(update={"models_dir": models})
    worker = Worker(settings)
    fp32, int8 = featurizers["fp32"], featurizers["int8"]
    assert worker.model_id == fp32.model_id

    # A new model is exported under the configured name (here: the INT8 artefacts).
    for new, configured in zip(
        artefact_paths(models, "int8"), artefact_paths(models, "fp32"), strict=True
    ):
        shutil.copyfile(new, configured)
    assert worker.swap_model_if_changed() is False  # the catalog has no vectors of it yet
    assert worker.model_id == fp32.model_id and "until the catalog is re-indexed" in caplog.text

    store = CatalogStore(settings.catalog_url)
    reindex(store=store, featurizer=int8, images_dir=settings.images_dir)
    store.close()
    assert worker.swap_model_if_changed() is True
    assert worker.model_id == worker.index.model_id == int8.model_id
    assert len(worker.index) == 20
    query = int8.embed([load_photo("clock")])[0]
    assert worker.index.search(query, k=1)[0].item_id == "clock"
    worker.catalog.stop()


def test_a_worker_on_the_vector_database_backend(live_settings, featurizer, tmp_path):
    import pytest

    pytest.importorskip("pymilvus", reason="the [vectordb] extra")
    from edgelens.search.milvus import MilvusIndex

    search = live_settings.search.model_copy(
        update={"backend": "milvus", "milvus_uri": str(tmp_path / "milvus.db")}
    )
    worker = Worker(live_settings.model_copy(update={"search": search}))
    assert isinstance(worker.index, MilvusIndex) and len(worker.index) == 20
    query = featurizer.embed([load_photo("coins")])[0]
    assert worker.index.search(query, k=1)[0].item_id == "coins"
    store = CatalogStore(live_settings.catalog_url)
    store.remove(["coins"])
    store.close()
    worker.catalog.apply_pending()
    assert "coins" not in worker.index
    worker.index.close()
