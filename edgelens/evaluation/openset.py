"""The open set: how the answer's "no match" decision trades known items against unknown views.

Each query is answered once by both stages (stage two forced, every item ranked), and the
product's answer under any thresholds is then replayed from those two answers: the same
rules the worker applies (:meth:`AnswerPolicy.unsettled`, :meth:`AnswerPolicy.decide`),
without answering again. That gives the curve of "no match" on unknown views against
known top-1 as the thresholds move, and the calibration of the defaults
(``python -m benchmarks.quality`` draws it: docs/benchmarks.md, open set).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from edgelens.cloud.answer import Answer, Answerer, AnswerPolicy
from edgelens.evaluation.runner import Query, System, sent_queries
from edgelens.wire.records import Decision


@dataclass(frozen=True)
class Staged:
    """One query's two answers: stage one's, and stage two's (None without a view)."""

    query: Query
    first: Answer
    confirmed: Answer | None

    def final(self, policy: AnswerPolicy) -> tuple[Answer, Decision]:
        """The answer the device ends with under ``policy``, and its decision."""
        answer = self.first
        first_decision = policy.decide(answer.matches)
        if self.confirmed is not None and policy.unsettled(answer.matches, first_decision):
            answer = self.confirmed
        return answer, policy.decide(answer.matches, view_structure=answer.view_structure)


def staged_answers(system: System, answerer: Answerer, queries: Sequence[Query]) -> list[Staged]:
    """Both stages of every query, as ``system``'s device sends it, every item ranked."""
    k = len(answerer.index)
    staged = []
    for sent in sent_queries(
        system.featurizer,
        queries,
        sends=system.sends,
    ):
        first = answerer.first(sent.vectors, k=k)
        confirmed = None
        if sent.view is not None:
            confirmed = answerer.confirm(sent.vectors, sent.view, k=k)
        staged.append(Staged(sent.query, first, confirmed))
    return staged


@dataclass(frozen=True)
class OpenSetPoint:
    """Known top-1 (decision applied) and unknown "no match" share under one policy."""

    policy: AnswerPolicy
    known_top1: float
    no_match_rate: float
    confirmed_share: float  # known and unknown queries whose answer took stage two


def operating_point(
    policy: AnswerPolicy, known: Sequence[Staged], unknown: Sequence[Staged]
) -> OpenSetPoint:
    right = 0
    confirmed = 0
    for staged in known:
        answer, decision = staged.final(policy)
        right += decision is Decision.MATCH and answer.matches[0].item_id == staged.query.item_id
        confirmed += answer is staged.confirmed
    rejected = 0
    for staged in unknown:
        answer, decision = staged.final(policy)
        rejected += decision is Decision.NO_MATCH
        confirmed += answer is staged.confirmed
    return OpenSetPoint(
        policy,
        right / len(known),
        rejected / len(unknown) if unknown else 0.0,
        confirmed / (len(known) + len(unknown)),
    )


def sweep(
    base: AnswerPolicy,
    known: Sequence[Staged],
    unknown: Sequence[Staged],
    *,
    scores: Iterable[float] = np.arange(0.3, 0.8, 0.01),
    leads: Iterable[float] = np.arange(0.0, 0.5, 0.01),
) -> list[OpenSetPoint]:
    """The operating point of every (``match_score``, ``match_lead``) on the grid."""
    leads = list(leads)
    return [
        operating_point(
            dataclasses.replace(
                base, match_score=round(float(score), 3), match_lead=round(float(lead), 3)
            ),
            known,
            unknown,
        )
        for score in scores
        for lead in leads
    ]


def frontier(points: Sequence[OpenSetPoint]) -> list[OpenSetPoint]:
    """The points no other point beats on both known top-1 and unknown "no match", by
    rising "no match": the curve a threshold choice moves along."""
    best: list[OpenSetPoint] = []
    for point in sorted(points, key=lambda p: (-p.known_top1, -p.no_match_rate)):
        if not best or point.no_match_rate > best[-1].no_match_rate:
            best.append(point)
    return best


def calibrate(points: Sequence[OpenSetPoint], *, no_match_rate: float) -> OpenSetPoint:
    """The point with the best known top-1 among those answering at least
    ``no_match_rate`` of the unknown views "no match" (ties: the more cautious)."""
    passing = [p for p in points if p.no_match_rate >= no_match_rate]
    if not passing:
        raise ValueError(f"no threshold reaches a no-match rate of {no_match_rate}")
    return max(passing, key=lambda p: (p.known_top1, p.no_match_rate))
