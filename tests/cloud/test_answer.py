"""The answer policy alone: the "no match" decision and when a first answer is final."""

import numpy as np
import pytest

from edgelens.catalog.models import CatalogItem
from edgelens.cloud.answer import Answerer, AnswerPolicy, lead, view_structure
from edgelens.evaluation.empty_views import empty_views
from edgelens.featurizer.focus import decode_focus_view, focus_view_jpeg
from edgelens.samples.photos import SAMPLE_PHOTOS, load_photo
from edgelens.samples.views import camera_views
from edgelens.search.base import SearchFilter
from edgelens.search.exact import ExactIndex
from edgelens.search.recall import RecalledViews
from edgelens.settings import VIEW_BYTES, Settings
from edgelens.wire.records import Decision, Match, Stage

RNG = np.random.default_rng(7)
NOTHING_IN_VIEW = empty_views(3, seed=7)


def _matches(*scores: float, verified: bool | None = None) -> list[Match]:
    return [
        Match(f"item-{n}", "", None, "EUR", True, score, verified if n == 0 else None)
        for n, score in enumerate(scores)
    ]


def test_the_lead_is_over_the_catalogs_background_for_the_view():
    # ranks 6-15 average 0.35: the view's "any item" level in this catalog
    scores = (0.8, 0.7, 0.6, 0.5, 0.45, *([0.4] * 5), *([0.3] * 5), 0.1)
    assert lead(_matches(*scores)) == pytest.approx(0.8 - 0.35)
    assert lead(_matches(0.8, 0.7)) == pytest.approx(0.8), "no background: the whole score"


@pytest.mark.parametrize(
    ("best", "background", "verified", "decision"),
    [
        (0.62, 0.4, None, Decision.MATCH),  # high enough, and stands out
        (0.55, 0.4, None, Decision.NO_MATCH),  # no more than any item does
        (0.55, 0.4, False, Decision.NO_MATCH),
        (0.45, 0.1, None, Decision.NO_MATCH),  # stands out of nothing: too low
        (0.55, 0.4, True, Decision.MATCH),  # its keypoints are in the view
        (0.3, 0.3, True, Decision.MATCH),
    ],
)
def test_an_answer_is_a_match_when_verified_or_high_and_standing_out(
    best, background, verified, decision
):
    policy = AnswerPolicy(top_k=5, match_score=0.5, match_lead=0.2)
    answer = _matches(best, *([background + 0.1] * 4), *([background] * 10), verified=verified)
    assert policy.decide(answer) is decision
    assert policy.decide([]) is Decision.NO_MATCH


def test_a_first_answer_is_final_only_as_a_clear_match():
    policy = AnswerPolicy(top_k=5, confirm_margin=0.2)
    clear = _matches(0.9, 0.65)
    assert not policy.unsettled(clear, Decision.MATCH)
    assert policy.unsettled(clear, Decision.NO_MATCH)
    assert policy.unsettled(_matches(0.9, 0.75), Decision.MATCH)  # a sibling close behind
    assert policy.unsettled(_matches(0.9), Decision.MATCH)


def test_the_settings_map_onto_the_policy_in_one_place():
    settings = Settings(
        search={
            "top_k": 7,
            "verify": False,
            "match_score": 0.6,
            "match_lead": 0.3,
            "available_only": True,
        }
    )
    policy = AnswerPolicy.from_settings(settings)
    assert (policy.top_k, policy.verify, policy.view_focus) == (7, False, True)
    assert (policy.match_score, policy.match_lead) == (0.6, 0.3)
    assert policy.filters.available_only
    assert policy.searched == 15, "the background's ranks are searched too"


def _sent(frame: np.ndarray) -> np.ndarray:
    """The focus view a device sends of ``frame``, as the worker decodes it."""
    return decode_focus_view(focus_view_jpeg(frame, VIEW_BYTES))


def test_views_of_nothing_show_less_structure_than_any_sample_items_camera_view():
    policy = AnswerPolicy.from_settings(Settings())
    nothing = {q.origin: view_structure(_sent(q.image_bgr)) for q in NOTHING_IN_VIEW}
    assert max(nothing.values()) < policy.min_view_structure, nothing
    items = [
        view_structure(_sent(view))
        for photo in SAMPLE_PHOTOS
        for view in camera_views(load_photo(photo.loader), 2, seed=3)
    ]
    assert min(items) > policy.min_view_structure
    grey_view = _sent(NOTHING_IN_VIEW[0].image_bgr)[..., 1]
    assert view_structure(grey_view) < policy.min_view_structure, "grey views too"


def test_a_view_of_nothing_is_a_match_only_when_verified():
    policy = AnswerPolicy(top_k=5, match_score=0.5, match_lead=0.0, min_view_structure=1.5)
    clear = _matches(0.9, 0.4)
    assert policy.decide(clear) is Decision.MATCH, "stage one has no view to judge"
    assert policy.decide(clear, view_structure=3.0) is Decision.MATCH
    assert policy.decide(clear, view_structure=1.0) is Decision.NO_MATCH
    assert policy.decide(_matches(0.9, 0.4, verified=True), view_structure=1.0) is Decision.MATCH


def test_stage_two_measures_its_view_and_answers_a_view_of_nothing_no_match():
    dim = 16
    index = ExactIndex("model", dim)
    vectors = RNG.normal(size=(4, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index.upsert(
        [CatalogItem(f"sku-{n}", f"Item {n}", 1.0, "EUR", True, "", "") for n in range(4)],
        list(vectors[:, None, :]),
    )
    answerer = Answerer(
        index=index,
        policy=AnswerPolicy(top_k=3, match_score=0.5, match_lead=0.0, min_view_structure=1.5),
        embed_view=lambda boxes: np.repeat(vectors[:1], len(boxes), axis=0),
        keypoints_of=lambda item_ids: {},  # no keypoints: nothing is verified
    )
    query = [vectors[0]]
    assert answerer.first(query).decision is Decision.MATCH, "the vector alone cannot tell"
    blank = answerer.confirm(query, _sent(NOTHING_IN_VIEW[0].image_bgr))
    assert blank.decision is Decision.NO_MATCH and blank.stage is Stage.CONFIRMED
    assert blank.matches[0].item_id == "sku-0", "the nearest items are still ranked"
    assert blank.view_structure is not None and blank.view_structure < 1.5
    coffee = answerer.confirm(query, _sent(load_photo("coffee")))
    assert coffee.decision is Decision.MATCH and coffee.matches[0].item_id == "sku-0"
    assert coffee.view_structure > 1.5


def _catalog(dim: int = 16, items: int = 4) -> tuple[ExactIndex, np.ndarray, list[CatalogItem]]:
    vectors = RNG.normal(size=(items, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    catalog = [
        CatalogItem(f"sku-{n}", f"Item {n}", float(n), "EUR", n != 3, "", "") for n in range(items)
    ]
    index = ExactIndex("model", dim)
    index.upsert(catalog, list(vectors[:, None, :]))
    return index, vectors, catalog


def _near(vector: np.ndarray, cosine: float) -> np.ndarray:
    """A unit vector at ``cosine`` to the unit ``vector``."""
    other = RNG.normal(size=vector.shape).astype(np.float32)
    other -= (other @ vector) * vector
    other /= np.linalg.norm(other)
    return (cosine * vector + np.sqrt(1 - cosine**2) * other).astype(np.float32)


def test_a_corrected_view_seen_again_gets_the_corrected_answer_in_either_stage():
    index, vectors, catalog = _catalog()
    # a frame answered sku-0 by its vectors, corrected to sku-2: the vectors it was sent
    # with, and its view's as stage two makes them
    sent, view = _near(vectors[0], 0.3), _near(vectors[0], 0.35)
    corrected = RecalledViews.of([(sent[None, :], view[None, :], catalog[2])], 16)
    answerer = Answerer(
        index=index,
        policy=AnswerPolicy(top_k=2, match_score=0.0, confirm_margin=0.0),
        embed_view=lambda boxes: np.repeat(view[None, :], len(boxes), axis=0),
        keypoints_of=lambda item_ids: {},
        recall=lambda: corrected,
    )
    assert answerer.first([view]).recalled is None, "stage one compares the sent vectors"
    again = answerer.first([_near(sent, 0.97)])
    assert again.matches[0].item_id == "sku-2"
    assert again.decision is Decision.MATCH and again.recalled is not None
    assert again.matches[0].score == pytest.approx(0.97, abs=1e-4)
    assert len(again.matches) == 2
    assert not answerer.wants_confirmation(again), "a person already answered this view"
    confirmed = answerer.confirm([vectors[1]], _sent(load_photo("coffee")))
    assert confirmed.matches[0].item_id == "sku-2", "the view's own vectors recall it"
    other = answerer.first([_near(sent, 0.9)])
    assert other.recalled is None and other.matches[0].item_id != "sku-2", (
        "a view less alike is not the corrected one"
    )


def test_a_view_corrected_as_not_in_the_catalog_or_to_a_filtered_item_is_no_match():
    index, vectors, catalog = _catalog()
    seen, hidden = _near(vectors[0], 0.5), _near(vectors[1], 0.5)
    nothing = np.zeros((0, 16), np.float32)
    corrected = RecalledViews.of(
        [(seen[None, :], nothing, None), (hidden[None, :], nothing, catalog[3])], 16
    )
    answerer = Answerer(
        index=index,
        policy=AnswerPolicy(top_k=3, filters=SearchFilter(available_only=True)),
        recall=lambda: corrected,
    )
    assert answerer.first([vectors[0]]).decision is Decision.MATCH
    nothing = answerer.first([seen])
    assert nothing.decision is Decision.NO_MATCH and nothing.recalled is not None
    assert nothing.matches[0].item_id == "sku-0", "the nearest items are still ranked"
    unavailable = answerer.first([hidden])
    assert unavailable.decision is Decision.NO_MATCH, "sku-3 is not available"
    assert "sku-3" not in [m.item_id for m in unavailable.matches]


def test_a_clear_first_answer_says_so_and_wants_no_stage_two():
    index, vectors, _ = _catalog()
    answerer = Answerer(
        index=index,
        policy=AnswerPolicy(top_k=3, match_score=0.5, confirm_margin=0.2),
        embed_view=lambda boxes: np.repeat(vectors[:1], len(boxes), axis=0),
    )
    clear = answerer.first([vectors[0]])  # 1.0 against random others
    assert clear.clear and clear.decision is Decision.MATCH
    assert not answerer.wants_confirmation(clear)
    between = answerer.first(
        [_near((vectors[0] + vectors[1]) / np.linalg.norm(vectors[0] + vectors[1]), 0.99)]
    )
    assert not between.clear and answerer.wants_confirmation(between), "two items alike"
    nothing = answerer.first([_near(vectors[0], 0.3)])
    assert nothing.decision is Decision.NO_MATCH and not nothing.clear
