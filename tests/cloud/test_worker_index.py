"""The worker's index: exact for small catalogs, a saved faiss index it restarts from."""

from __future__ import annotations

import logging

from edgelens.catalog.store import CatalogStore
from edgelens.cloud.worker import Worker
from edgelens.evaluation.sample_photos import load_photo
from edgelens.search.ann import AnnIndex
from edgelens.search.exact import ExactIndex


def _with_backend(settings, backend):
    search = settings.search.model_copy(update={"backend": backend})
    return settings.model_copy(update={"search": search})


def test_small_catalogs_get_the_exact_index(live_settings):
    worker = Worker(live_settings)
    assert isinstance(worker._matcher.index, ExactIndex)
    assert len(worker._matcher.index) == 20


def test_ann_worker_restarts_from_its_saved_index_and_catches_up(live_settings, featurizer, caplog):
    settings = _with_backend(live_settings, "ann")
    first = Worker(settings)
    assert isinstance(first._matcher.index, AnnIndex) and len(first._matcher.index) == 20
    saved = list(settings.index_dir.glob("*.npz"))
    assert len(saved) == 1 and first.model_id in saved[0].name
    first.start()
    first.stop()

    store = CatalogStore(settings.catalog_db)  # a change while no worker runs
    store.remove(["coffee"])
    store.close()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = Worker(settings)
    assert "ANN index loaded" in caplog.text and "IVF" not in caplog.text, "no rebuild"
    assert "coffee" in second._matcher.index  # as saved, before catching up
    assert second.catalog.apply_pending() == 1
    assert "coffee" not in second._matcher.index
    query = featurizer.embed([load_photo("clock")])[0]
    assert second._matcher.index.search(query, k=1)[0].item_id == "clock"
