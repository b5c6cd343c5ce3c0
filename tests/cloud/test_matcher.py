"""The matcher alone (no servers): stage one from the vectors, stage two from the view."""

import dataclasses
import time

import cv2
import numpy as np
import pytest

from edgelens.catalog.models import CatalogItem
from edgelens.cloud.answer import Answerer, AnswerPolicy
from edgelens.cloud.matcher import Matcher
from edgelens.featurizer.focus import focus_view_jpeg
from edgelens.featurizer.local_features import extract_local_features
from edgelens.samples.photos import load_photo
from edgelens.samples.views import camera_views
from edgelens.search.exact import ExactIndex
from edgelens.search.verify import PhotoKeypoints
from edgelens.wire.features import MAX_JPEG_BYTES, FeatureMessage, encode
from edgelens.wire.names import features_topic
from edgelens.wire.records import Decision, Stage

PHOTOS = ("coffee", "rocket", "chelsea")


@pytest.fixture(scope="module")
def keypoints():
    return {name: extract_local_features(load_photo(name)) for name in PHOTOS}


def _matcher(keypoints, *, verify: bool = True, candidates: int = 10, embed_view=None, **policy):
    index = ExactIndex("model-a", 4)
    items = [CatalogItem(n, n, 1.0, "EUR", True, n * 8, f"{n}.png") for n in PHOTOS]
    # The vectors rank rocket, then chelsea, then coffee for the query below.
    index.upsert(items, [np.eye(4, dtype=np.float32)[i] for i in (2, 0, 1)])
    answerer = Answerer(
        index=index,
        policy=AnswerPolicy(
            top_k=3,
            verify=verify,
            view_focus=embed_view is not None,
            verify_candidates=candidates,
            **policy,
        ),
        embed_view=embed_view,
        keypoints_of=lambda ids: {
            i: [PhotoKeypoints(keypoints[i], np.zeros((0, 4), np.float32))]
            for i in ids
            if i in keypoints
        },
    )
    return Matcher(answerer=answerer)


def _payload(view: bytes | None, focus_embedding: np.ndarray | None = None) -> bytes:
    vector = np.array([0.6, 0.5, 0.4, 0.0], np.float32)
    message = FeatureMessage(
        "cam-1",
        1,
        time.time(),
        "model-a",
        vector / np.linalg.norm(vector),
        focus_embedding=focus_embedding,
        view_jpeg=view,
    )
    return encode(message)


def _first(matcher, view, focus_embedding=None):
    return matcher.first(
        features_topic("cam-1"), _payload(view, focus_embedding), received_at=time.time()
    )


@pytest.fixture(scope="module")
def coffee_view():
    return focus_view_jpeg(camera_views(load_photo("coffee"), 1, seed=8)[0], MAX_JPEG_BYTES)


def test_the_first_answer_is_the_vectors_and_the_view_confirms_the_item_it_shows(
    keypoints, coffee_view
):
    matcher = _matcher(keypoints)
    first = _first(matcher, coffee_view)
    assert [m.item_id for m in first.record.matches] == ["rocket", "chelsea", "coffee"]
    assert first.record.stage is Stage.FIRST and "verify" not in first.record.stages_ms
    confirmed = matcher.confirm(first.confirm)
    assert (confirmed.device_id, confirmed.seq) == (first.record.device_id, first.record.seq)
    assert confirmed.stage is Stage.CONFIRMED
    assert [m.item_id for m in confirmed.matches] == ["coffee", "rocket", "chelsea"]
    assert [m.verified for m in confirmed.matches] == [True, False, False]
    assert "verify" in confirmed.stages_ms


def test_only_the_set_number_of_candidates_is_verified(keypoints, coffee_view):
    """Coffee is third by its vector: a window of two does not reach it."""
    matcher = _matcher(keypoints, candidates=2)
    confirmed = matcher.confirm(_first(matcher, coffee_view).confirm)
    assert [m.item_id for m in confirmed.matches] == ["rocket", "chelsea", "coffee"]
    assert [m.verified for m in confirmed.matches] == [False, False, None]


@pytest.mark.parametrize(
    ("verify", "with_view", "margin"),
    [(False, True, 2.0), (True, False, 2.0), (True, True, 0.0)],
    ids=["verification off", "no view sent", "first answer already unambiguous"],
)
def test_otherwise_there_is_no_stage_two(keypoints, coffee_view, verify, with_view, margin):
    matcher = _matcher(keypoints, verify=verify, confirm_margin=margin)
    first = _first(matcher, coffee_view if with_view else None)
    assert first.confirm is None
    assert [m.item_id for m in first.record.matches] == ["rocket", "chelsea", "coffee"]
    assert {m.verified for m in first.record.matches} == {None}


@pytest.mark.parametrize(
    "view",
    [b"\xff\xd8 not really a jpeg", cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1]],
    ids=["broken header", "another format"],
)
def test_a_view_that_is_no_jpeg_is_dropped_at_stage_one(keypoints, view):
    matcher = _matcher(keypoints)
    matcher = dataclasses.replace(matcher, keep_views=True)
    first = _first(matcher, bytes(view))
    assert [m.item_id for m in first.record.matches] == ["rocket", "chelsea", "coffee"]
    assert first.confirm is None and not first.record.view and first.view_jpeg is None
    assert first.view_refused


def test_a_view_too_small_to_use_leaves_the_first_answer_standing(keypoints):
    """A JPEG by its header, refused only once decoded (8x8 px): stage two answers nothing."""
    tiny = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()
    matcher = _matcher(keypoints)
    first = _first(matcher, tiny)
    assert first.view_refused is None and first.confirm is not None
    assert first.record.matches and matcher.confirm(first.confirm) is None


def test_no_match_without_a_lead_unless_verified(keypoints, coffee_view):
    """The best cosine here is 0.68 in a catalog too small for a background: under a lead
    of 0.8 the first answer is "no match"; stage two verifies coffee, and a verified item
    is a match whatever its lead."""
    matcher = _matcher(keypoints, match_lead=0.8)
    first = _first(matcher, coffee_view)
    assert first.record.decision is Decision.NO_MATCH
    assert matcher.confirm(first.confirm).decision is Decision.MATCH
    assert _first(_matcher(keypoints, match_lead=0.6), coffee_view).record.decision is (
        Decision.MATCH
    )
    blind = _matcher(keypoints, verify=False, match_lead=0.8)
    assert _first(blind, coffee_view).record.decision is Decision.NO_MATCH


def test_a_colour_view_is_featurized_once_and_each_box_searched(keypoints, coffee_view):
    """The boxes' vectors made on the worker (here a model that sees coffee, then chelsea,
    in any view): each item scores its best view; stage one leaves the view unread."""
    seen = []

    def embed_view(boxes):
        seen.append([box.shape for box in boxes])
        return np.eye(4, dtype=np.float32)[[2, 1]]  # coffee's, chelsea's catalog vectors

    matcher = _matcher(keypoints, verify=False, embed_view=embed_view)
    first = _first(matcher, coffee_view)
    assert seen == [] and "focus" not in first.record.stages_ms
    record = matcher.confirm(first.confirm)
    assert {m.item_id for m in record.matches[:2]} == {"coffee", "chelsea"}
    assert [m.score for m in record.matches[:2]] == pytest.approx([1, 1])
    (view_shape, inner_shape), *_ = seen  # the view, then its own centred box
    assert len(seen) == 1 and len(view_shape) == 3 and inner_shape[0] < view_shape[0]
    assert "focus" in record.stages_ms


def test_a_view_the_device_featurized_itself_is_not_featurized_again(keypoints, coffee_view):
    """With ``device.focus`` the message carries the view's own vector (here chelsea's):
    only the view's inner box is featurized on the worker (here coffee's)."""
    seen = []

    def embed_view(boxes):
        seen.append([box.shape for box in boxes])
        return np.eye(4, dtype=np.float32)[[2]][: len(boxes)]

    matcher = _matcher(keypoints, verify=False, embed_view=embed_view)
    chelsea = np.eye(4, dtype=np.float32)[1]
    record = matcher.confirm(_first(matcher, coffee_view, chelsea).confirm)
    assert len(seen) == 1 and len(seen[0]) == 1  # the inner box only
    assert [m.score for m in record.matches[:2]] == pytest.approx([1, 1])
    assert {m.item_id for m in record.matches[:2]} == {"coffee", "chelsea"}
