"""The answer path: how a message's vectors, and its view when it has one, become the answer.

The one place where settings turn into answering behaviour. The worker runs it on every
message and ``edgelens eval`` runs it on every query, so evaluation measures the product.

Two stages. :meth:`Answerer.first` answers from the message's vectors alone, at once (a
k-NN search: what the edge budget buys). :meth:`Answerer.confirm` runs only for a message
that carries its focus view (a device sends one when the view settles) and only when
:meth:`Answerer.wants_confirmation` says the first answer could still change: it featurizes
the view's boxes with the catalog's model, searches again and verifies the best candidates
by keypoints (:mod:`edgelens.search.verify`).

Both stages end in a decision (:class:`Decision`): "no match" when the evidence says the
thing in view is not in the catalog: its best item is not verified, and its cosine is low
or does not stand out from the rest of the catalog (:func:`lead`). Both thresholds are
calibrated on views of items and views of things that are not in the catalog, against two
catalogs (``python -m benchmarks.quality``; docs/benchmarks.md, open set). In stage two a
view that shows almost nothing (:func:`view_structure`: a plain wall, a covered lens, a
dark aisle, whose vectors resemble any flat catalog photo) is a match only when verified.

In either stage a view a person corrected, seen again (:mod:`edgelens.search.recall`),
gets the answer the person gave it, and needs no stage two.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from edgelens.catalog.models import CatalogItem
from edgelens.featurizer.focus import focus_views
from edgelens.featurizer.local_features import extract_local_features
from edgelens.search.base import (
    SearchFilter,
    VectorIndex,
    filter_mask,
    match_of,
    search_views,
)
from edgelens.search.recall import Recalled, RecalledViews
from edgelens.search.verify import PLANES, PhotoKeypoints, best_photos, verify
from edgelens.settings import Settings
from edgelens.wire.records import Decision, Match, Stage

# The index's own model on images: one vector row per image.
EmbedImages = Callable[[Sequence[np.ndarray]], np.ndarray]
# Catalog keypoints of several items at once, each item's photos' (items without any absent).
KeypointsOf = Callable[[Sequence[str]], Mapping[str, Sequence[PhotoKeypoints]]]
# The views people corrected, as remembered now.
RecallOf = Callable[[], RecalledViews]
# The ranks (0-based) whose mean cosine stands for "any item" of the catalog for a view:
# past the few that may be the item or its near-duplicates.
BACKGROUND = slice(5, 15)
# The width (px) a view is shrunk to before its structure is measured, and the band of
# detail measured there (Gaussian sigmas, px): blobs between 1/64 and 1/16 of the width.
STRUCTURE_SIDE = 64
STRUCTURE_BAND = (1.0, 4.0)


@dataclass(frozen=True)
class AnswerPolicy:
    """The answering behaviour the settings ask for (:meth:`from_settings`)."""

    top_k: int
    filters: SearchFilter = field(default_factory=SearchFilter)
    view_focus: bool = True  # stage two featurizes the view and its own centred box
    verify: bool = True  # stage two verifies its best candidates by keypoints
    verify_candidates: int = 15
    verify_photos: int = 1  # of each candidate's photos, the ones nearest the view's vectors
    planes: int = PLANES
    # An answer that verification did not confirm is "no match" unless its cosine is at
    # least match_score and leads the catalog's background for this view (:func:`lead`) by
    # match_lead (the defaults: always a match).
    match_score: float = -1.0
    match_lead: float = -2.0
    # Stage one's answer is final when it is a match and leads the next item by this much:
    # nothing stage two could find would change it (default: never final).
    confirm_margin: float = 2.0
    # A view whose structure (:func:`view_structure`) is below this is a match only when
    # verified (the default: any view may be).
    min_view_structure: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> AnswerPolicy:
        search = settings.search
        return cls(
            top_k=search.top_k,
            filters=SearchFilter(
                min_price=search.min_price,
                max_price=search.max_price,
                available_only=search.available_only,
            ),
            view_focus=search.view_focus,
            verify=search.verify,
            verify_candidates=search.verify_candidates,
            verify_photos=search.verify_photos,
            match_score=search.match_score,
            match_lead=search.match_lead,
            confirm_margin=search.confirm_margin,
            min_view_structure=search.min_view_structure,
        )

    @property
    def searched(self) -> int:
        """How many items a search returns: the answer's, and the background's."""
        return max(self.top_k, BACKGROUND.stop)

    def unsettled(self, matches: Sequence[Match], decision: Decision) -> bool:
        """Whether a view could change a first answer (``matches`` and its ``decision``):
        not when it is a match that leads the next item by ``confirm_margin``."""
        if len(matches) < 2 or decision is Decision.NO_MATCH:
            return True
        return matches[0].score - matches[1].score < self.confirm_margin

    def decide(self, matches: Sequence[Match], *, view_structure: float | None = None) -> Decision:
        """A match when the best item is verified or, in a view that shows enough
        (``view_structure``, None without a view), scores ``match_score`` and leads the
        background by ``match_lead``; "no match" otherwise (and for an empty answer)."""
        if not matches:
            return Decision.NO_MATCH
        best = matches[0]
        if best.verified is True:
            return Decision.MATCH
        if view_structure is not None and view_structure < self.min_view_structure:
            return Decision.NO_MATCH
        if best.score >= self.match_score and lead(matches) >= self.match_lead:
            return Decision.MATCH
        return Decision.NO_MATCH


def lead(matches: Sequence[Match]) -> float:
    """How far the best item's cosine stands above what the view scores against any item
    of this catalog: the mean of the :data:`BACKGROUND` ranks. Relative, because absolute
    cosines of unrelated items rise with the catalog's size and with the kind of view; the
    whole score when the catalog is too small to have a background."""
    background = [m.score for m in matches[BACKGROUND]]
    return matches[0].score - (sum(background) / len(background) if background else 0.0)


def view_structure(view: np.ndarray) -> float:
    """How much a view (BGR or grey) shows: the mean magnitude, in grey levels, of its
    detail in the :data:`STRUCTURE_BAND` once shrunk to :data:`STRUCTURE_SIDE` px wide.
    The shrink averages sensor noise away and the band takes out smooth light (a falloff
    to the corners, light from one side), so a plain wall, a covered lens, a dark frame or
    a frame of noise measure about 1 or less and views of items several
    (docs/decisions.md)."""
    grey = cv2.cvtColor(view, cv2.COLOR_BGR2GRAY) if view.ndim == 3 else view
    height, width = grey.shape[:2]
    side = (STRUCTURE_SIDE, max(1, round(STRUCTURE_SIDE * height / width)))
    small = cv2.resize(grey, side, interpolation=cv2.INTER_AREA).astype(np.float32)
    fine, coarse = (cv2.GaussianBlur(small, (0, 0), sigma) for sigma in STRUCTURE_BAND)
    return float(np.mean(np.abs(fine - coarse)))


@dataclass(frozen=True)
class Answer:
    """One stage's answer: the items best first, the decision, and what each step cost;
    stage two's also how much its view shows (:func:`view_structure`)."""

    matches: list[Match]
    decision: Decision
    stage: Stage
    stages_ms: dict[str, float]
    view_structure: float | None = None
    recalled: Recalled | None = None  # a corrected view this one is again
    clear: bool = False  # a first answer stage two could not change (AnswerPolicy.unsettled)


class Answerer:
    """Answers vectors (and views) of one model against one index, as the policy says.

    ``embed_view`` is the index's model on images (None: views are not featurized);
    ``keypoints_of`` gives catalog keypoints (None: nothing is verified); ``recall`` the
    views people corrected (None: none are remembered).
    """

    def __init__(
        self,
        *,
        index: VectorIndex,
        policy: AnswerPolicy,
        embed_view: EmbedImages | None = None,
        keypoints_of: KeypointsOf | None = None,
        recall: RecallOf | None = None,
    ) -> None:
        self.index = index
        self.policy = policy
        self._embed_view = embed_view if policy.view_focus else None
        self._keypoints_of = keypoints_of if policy.verify else None
        self._recall = recall

    @property
    def can_confirm(self) -> bool:
        return self._embed_view is not None or self._keypoints_of is not None

    def first(self, vectors: Sequence[np.ndarray], *, k: int | None = None) -> Answer:
        """Stage one: the ``k`` (default ``top_k``) best items for the vectors alone."""
        started = time.perf_counter()
        wanted = k or self.policy.top_k
        matches = search_views(
            self.index,
            vectors,
            k=max(wanted, self.policy.searched),
            filters=self.policy.filters,
        )
        searched = {"search": _ms_since(started)}
        decision = self.policy.decide(matches)
        clear = not self.policy.unsettled(matches, decision)
        answer = Answer(matches[:wanted], decision, Stage.FIRST, searched, clear=clear)
        return self._as_corrected(answer, vectors, stage_two=False)

    def wants_confirmation(self, first: Answer) -> bool:
        """Whether stage two could change ``first`` (:meth:`AnswerPolicy.unsettled`): not
        when it is a corrected view again."""
        return self.can_confirm and first.recalled is None and not first.clear

    def confirm(
        self, vectors: Sequence[np.ndarray], view: np.ndarray, *, k: int | None = None
    ) -> Answer:
        """Stage two from the decoded focus view (BGR, or grey from the first devices that
        sent one: verified, not featurized): the ``k`` best, verified ones first."""
        policy = self.policy
        stages: dict[str, float] = {}
        started = time.perf_counter()
        vectors = list(vectors)
        if self._embed_view is not None and view.ndim == 3:
            boxes = focus_views(view)
            if len(vectors) > 1:  # the device sent its focus box's vector itself
                boxes = boxes[1:]
            vectors += list(self._embed_view(boxes))
            stages["focus"] = _ms_since(started)
        searched_at = time.perf_counter()
        verifying = self._keypoints_of is not None
        wanted = k or policy.top_k
        matches = search_views(
            self.index,
            vectors,
            k=max(wanted, policy.searched, policy.verify_candidates if verifying else 0),
            filters=policy.filters,
        )
        stages["search"] = _ms_since(searched_at)
        if self._keypoints_of is not None:
            verified_at = time.perf_counter()
            head = [m.item_id for m in matches[: policy.verify_candidates]]
            queries = np.stack(vectors)
            chosen = {
                item_id: best_photos(photos, queries, policy.verify_photos)
                for item_id, photos in self._keypoints_of(head).items()
            }
            matches, _ = verify(
                matches,
                extract_local_features(view),
                lambda item_id: chosen.get(item_id, ()),
                candidates=policy.verify_candidates,
                planes=policy.planes,
            )
            stages["verify"] = _ms_since(verified_at)
        structure = view_structure(view)
        decision = policy.decide(matches, view_structure=structure)
        answer = Answer(matches[:wanted], decision, Stage.CONFIRMED, stages, structure)
        return self._as_corrected(answer, vectors, stage_two=True)

    def answer(
        self, vectors: Sequence[np.ndarray], view: np.ndarray | None, *, k: int | None = None
    ) -> Answer:
        """What a device finally sees for a settled view: the first answer, confirmed
        when it carries a view and the first answer could still change."""
        first = self.first(vectors, k=k)
        if view is None or not self.wants_confirmation(first):
            return first
        return self.confirm(vectors, view, k=k)

    def _as_corrected(
        self, answer: Answer, vectors: Sequence[np.ndarray], *, stage_two: bool
    ) -> Answer:
        """``answer``, or, for a view a person corrected seen again, the answer they gave:
        its item first (at the better of its scores), or "no match" for something not in
        the catalog or an item the filters leave out."""
        remembered = self._recall() if self._recall is not None else None
        if not remembered:
            return answer
        started = time.perf_counter()
        recalled = remembered.nearest(vectors, stage_two=stage_two)
        stages = {**answer.stages_ms, "recall": _ms_since(started)}
        if recalled is None:
            return replace(answer, stages_ms=stages)
        item = recalled.item
        if item is None or not _passes(self.policy.filters, item):
            return replace(
                answer, decision=Decision.NO_MATCH, stages_ms=stages, recalled=recalled, clear=False
            )
        held = next((m for m in answer.matches if m.item_id == item.item_id), None)
        score = max(recalled.score, held.score if held else -1.0)
        first = replace(held, score=score) if held else match_of(item, score)
        others = [m for m in answer.matches if m.item_id != item.item_id]
        return replace(
            answer,
            matches=[first, *others][: len(answer.matches) or 1],
            decision=Decision.MATCH,
            stages_ms=stages,
            recalled=recalled,
            clear=False,  # a person's answer, not the vectors' margin
        )


def _passes(filters: SearchFilter, item: CatalogItem) -> bool:
    price = np.array([np.nan if item.price is None else item.price])
    mask = filter_mask(filters, price=price, available=np.array([item.available]))
    return mask is None or bool(mask[0])


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
