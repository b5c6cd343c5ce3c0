"""The matcher alone (no servers): when it verifies and when it answers from the vectors."""

import dataclasses
import time

import numpy as np
import pytest

from edgelens.catalog.models import CatalogItem
from edgelens.cloud.matcher import Matcher
from edgelens.evaluation.sample_photos import load_photo
from edgelens.evaluation.views import camera_views
from edgelens.featurizer.focus import focus_view_jpeg
from edgelens.featurizer.local_features import extract_local_features
from edgelens.search.base import SearchFilter
from edgelens.search.exact import ExactIndex
from edgelens.wire.features import MAX_JPEG_BYTES, FeatureMessage, encode
from edgelens.wire.names import features_topic

PHOTOS = ("coffee", "rocket", "chelsea")


@pytest.fixture(scope="module")
def keypoints():
    return {name: extract_local_features(load_photo(name)) for name in PHOTOS}


def _matcher(keypoints, *, verify: bool, candidates: int = 10) -> Matcher:
    index = ExactIndex("model-a", 4)
    items = [CatalogItem(n, n, 1.0, "EUR", True, n * 8, f"{n}.png") for n in PHOTOS]
    # The vectors rank rocket, then chelsea, then coffee for the query below.
    index.upsert(items, [np.eye(4, dtype=np.float32)[i] for i in (2, 0, 1)])
    return Matcher(
        index=index,
        top_k=3,
        filters=SearchFilter(),
        local_features_of=keypoints.get if verify else None,
        verify_candidates=candidates,
    )


def _payload(view: bytes | None, focus_embedding: np.ndarray | None = None) -> bytes:
    vector = np.array([0.6, 0.5, 0.4, 0.0], np.float32)
    message = FeatureMessage(
        "cam-1",
        1,
        time.time(),
        "model-a",
        vector / np.linalg.norm(vector),
        focus_embedding=focus_embedding,
        verify_jpeg=view,
    )
    return encode(message)


@pytest.fixture(scope="module")
def coffee_view():
    return focus_view_jpeg(camera_views(load_photo("coffee"), 1, seed=8)[0], MAX_JPEG_BYTES)


def test_the_view_moves_the_item_it_shows_first(keypoints, coffee_view):
    record = _matcher(keypoints, verify=True).match(
        features_topic("cam-1"), _payload(coffee_view), received_at=time.time()
    )
    assert [m.item_id for m in record.matches] == ["coffee", "rocket", "chelsea"]
    assert [m.verified for m in record.matches] == [True, False, False]  # in the record
    assert "verify" in record.stages_ms


def test_only_the_set_number_of_candidates_is_verified(keypoints, coffee_view):
    """Coffee is third by its vector: a window of two does not reach it."""
    record = _matcher(keypoints, verify=True, candidates=2).match(
        features_topic("cam-1"), _payload(coffee_view), received_at=time.time()
    )
    assert [m.item_id for m in record.matches] == ["rocket", "chelsea", "coffee"]
    assert [m.verified for m in record.matches] == [False, False, None]
    assert "verify" in record.stages_ms


@pytest.mark.parametrize(
    ("verify_setting", "verify_call", "with_view"),
    [(False, True, True), (True, False, True), (True, True, False)],
    ids=["verification off", "superseded message", "no view sent"],
)
def test_otherwise_the_vectors_order_stands(
    keypoints, coffee_view, verify_setting, verify_call, with_view
):
    record = _matcher(keypoints, verify=verify_setting).match(
        features_topic("cam-1"),
        _payload(coffee_view if with_view else None),
        received_at=time.time(),
        verify=verify_call,
    )
    assert [m.item_id for m in record.matches] == ["rocket", "chelsea", "coffee"]
    assert {m.verified for m in record.matches} == {None}
    assert "verify" not in record.stages_ms


def test_a_colour_view_is_featurized_once_and_each_box_searched(keypoints, coffee_view):
    """The boxes' vectors made on the worker (here a model that sees coffee, then chelsea,
    in any view): each item scores its best view; a superseded message leaves the view
    unread."""
    seen = []

    def embed_view(boxes):
        seen.append([box.shape for box in boxes])
        return np.eye(4, dtype=np.float32)[[2, 1]]  # coffee's, chelsea's catalog vectors

    matcher = dataclasses.replace(_matcher(keypoints, verify=False), embed_view=embed_view)
    topic = features_topic("cam-1")
    record = matcher.match(topic, _payload(coffee_view), received_at=time.time())
    assert {m.item_id for m in record.matches[:2]} == {"coffee", "chelsea"}
    assert [m.score for m in record.matches[:2]] == pytest.approx([1, 1])
    (view_shape, inner_shape), *_ = seen  # the view, then its own centred box
    assert len(seen) == 1 and len(view_shape) == 3 and inner_shape[0] < view_shape[0]
    assert "focus" in record.stages_ms
    superseded = matcher.match(topic, _payload(coffee_view), received_at=time.time(), verify=False)
    assert [m.item_id for m in superseded.matches] == ["rocket", "chelsea", "coffee"]
    assert len(seen) == 1 and "focus" not in superseded.stages_ms


def test_a_view_the_device_featurized_itself_is_not_featurized_again(keypoints, coffee_view):
    """With ``device.focus`` the message carries the view's own vector (here chelsea's):
    only the view's inner box is featurized on the worker (here coffee's)."""
    seen = []

    def embed_view(boxes):
        seen.append([box.shape for box in boxes])
        return np.eye(4, dtype=np.float32)[[2]][: len(boxes)]

    matcher = dataclasses.replace(_matcher(keypoints, verify=False), embed_view=embed_view)
    chelsea = np.eye(4, dtype=np.float32)[1]
    record = matcher.match(
        features_topic("cam-1"), _payload(coffee_view, chelsea), received_at=time.time()
    )
    assert len(seen) == 1 and len(seen[0]) == 1  # the inner box only
    assert [m.score for m in record.matches[:2]] == pytest.approx([1, 1])
    assert {m.item_id for m in record.matches[:2]} == {"coffee", "chelsea"}
