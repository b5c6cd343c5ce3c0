"""The answer policy alone: the "no match" decision and when a first answer is final."""

import pytest

from edgelens.cloud.answer import AnswerPolicy, lead
from edgelens.settings import Settings
from edgelens.wire.records import Decision, Match


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
