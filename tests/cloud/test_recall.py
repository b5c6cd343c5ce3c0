"""The worker's corrected views against a real catalog: what it remembers, and when."""

import time
import tracemalloc

import numpy as np
import pytest

from edgelens.catalog.models import CatalogItem, Correction
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.recall import CorrectedViews, view_rows
from edgelens.featurizer.focus import decode_focus_view, focus_view_jpeg
from edgelens.samples.photos import SAMPLE_PHOTOS, load_photo
from edgelens.settings import VIEW_BYTES
from edgelens.wire.features import FeatureMessage, encode


def _item(item_id: str) -> CatalogItem:
    return CatalogItem(item_id, item_id.title(), 1.0, "EUR", True, "0" * 64, "x.png")


def _correct(store, item_id, view, seq=1, vectors=None):
    with store.transaction() as write:
        return write.log_correction(
            Correction(0, time.time(), "admin", "cam-1", seq, item_id, None),
            view=view,
            vectors=vectors,
        )


def _sent(featurizer, image, model_id=None) -> bytes:
    """A frame's vectors as the worker keeps them: a message without its view."""
    vector = featurizer.embed([image])[0]
    return encode(FeatureMessage("cam-1", 1, 0.0, model_id or featurizer.model_id, vector))


def _remembering(store: CatalogStore, featurizer) -> CorrectedViews:
    """A worker's corrected views of ``featurizer``'s model, refreshed once."""
    corrected = CorrectedViews(
        store,
        embed=featurizer.embed,
        models=frozenset({featurizer.model_id}),
        dim=featurizer.dim,
        capacity=100,
    )
    corrected.refresh()
    return corrected


@pytest.mark.parametrize("catalog_backend", ["sqlite", "postgresql"])
def test_the_worker_remembers_standing_corrections_with_a_view(featurizer, catalog_location):
    store = CatalogStore(catalog_location)
    with store.transaction() as write:
        write.upsert(_item("cup"))
        write.upsert(_item("toy"))
    views = {name: focus_view_jpeg(load_photo(name), VIEW_BYTES) for name in ("coffee", "rocket")}
    embedded = []

    def embed(boxes):
        embedded.append(len(boxes))
        return featurizer.embed(boxes)

    corrected = CorrectedViews(
        store, embed=embed, models=frozenset({featurizer.model_id}), dim=featurizer.dim, capacity=2
    )
    corrected.refresh()
    assert len(corrected()) == 0
    cup = _correct(store, "cup", views["coffee"])
    nothing = _correct(store, None, views["rocket"], seq=2)
    _correct(store, "toy", None, seq=3)  # no view kept: nothing to remember
    corrected.refresh()
    coffee = view_rows(featurizer.embed, decode_focus_view(views["coffee"]))
    recalled = corrected().nearest(list(coffee), stage_two=True)
    assert recalled is not None and recalled.item == store.get("cup")
    rocket = view_rows(featurizer.embed, decode_focus_view(views["rocket"]))
    recalled = corrected().nearest(list(rocket), stage_two=True)
    assert recalled is not None and recalled.item is None, "not in the catalog"
    assert len(embedded) == 2, "each view featurized once"
    corrected.refresh()
    assert len(embedded) == 2, "nothing changed: the catalog is not read again"

    with store.transaction() as write:
        write.mark_undone(cup.correction_id, user="admin", at=time.time())
    corrected.refresh()
    assert corrected().nearest(list(coffee), stage_two=True) is None, (
        "an undone correction is forgotten"
    )
    assert corrected().nearest(list(rocket), stage_two=True) is not None and len(embedded) == 2

    _correct(store, "toy", views["coffee"], seq=4)
    _correct(store, "cup", views["rocket"], seq=5)
    corrected.refresh()
    assert corrected().nearest(list(coffee), stage_two=True).item == store.get("toy")
    assert corrected().nearest(list(rocket), stage_two=True).item == store.get("cup"), (
        "the newest two only"
    )
    assert nothing.correction_id not in [c for c, _ in store.corrected_views(2)]
    store.remove(["cup"])
    corrected.refresh()
    assert corrected().nearest(list(coffee), stage_two=True).item == store.get("toy")
    assert corrected().nearest(list(rocket), stage_two=True).item is None, (
        "a removed item's correction goes: the older one of that view is among the newest two"
    )
    store.close()


@pytest.mark.parametrize("catalog_backend", ["sqlite"])
def test_a_corrected_frame_is_remembered_by_its_vectors_too_when_its_model_is_searched(
    featurizer, catalog_location
):
    """The frame's own vectors (what the next frames of the view resemble, before any
    view is featurized) are remembered when the worker's index searches their model."""
    store = CatalogStore(catalog_location)
    frame = load_photo("chelsea")
    view = focus_view_jpeg(frame, VIEW_BYTES)
    _correct(store, None, view, vectors=_sent(featurizer, frame))
    _correct(store, None, view, seq=2, vectors=_sent(featurizer, frame, "another-model-0000"))
    corrected = _remembering(store, featurizer)
    assert len(corrected()) == 2 + 1 + 2, "the other model's vectors are left out"
    frames = list(featurizer.embed([frame]))
    assert corrected().nearest(frames, stage_two=False).score > 0.99, "stage one recalls it"
    assert len(corrected().sent.items) == 1, "stage one compares the frame's own vectors"
    assert np.shares_memory(corrected().sent.rows, corrected().every.rows), "held once"
    store.close()


@pytest.mark.parametrize("catalog_backend", ["sqlite"])
def test_remembered_rows_are_held_once_across_refreshes(featurizer, catalog_location):
    """A refresh takes the rows it already holds from its one matrix: a worker keeps the
    rows of its corrections once, not again beside them, and they stay what they were."""
    store = CatalogStore(catalog_location)
    frames = [load_photo(photo.loader) for photo in SAMPLE_PHOTOS[:13]]
    for seq, frame in enumerate(frames[:12], start=1):
        view = focus_view_jpeg(frame, VIEW_BYTES)
        _correct(store, None, view, seq=seq, vectors=_sent(featurizer, frame))

    _remembering(store, featurizer)  # the store's and model's first-use allocations, uncounted
    tracemalloc.start()
    try:
        corrected = _remembering(store, featurizer)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    matrix = corrected().every.rows
    assert len(corrected().spans) == 12 and held < 1.25 * matrix.nbytes, (held, matrix.nbytes)
    before = [np.concatenate(corrected().rows_of(n)) for n in range(12)]
    view = focus_view_jpeg(frames[12], VIEW_BYTES)
    _correct(store, None, view, seq=13, vectors=_sent(featurizer, frames[12]))
    corrected.refresh()
    after = [np.concatenate(corrected().rows_of(n)) for n in range(13)]
    assert len(after) == 13 and not np.allclose(after[0], before[0]), "the newest first"
    for old, kept in zip(before, after[1:], strict=True):
        np.testing.assert_array_equal(kept, old)
    store.close()
