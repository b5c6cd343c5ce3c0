"""Spatial verification: re-rank the vector search's best candidates by matched keypoints.

The global vector finds the right item among the first few nearly always (top-5 ≥ 0.95
on every set we measure) but misorders near-duplicates (one chessboard in thirteen poses)
and objects among other things. For each of the first :data:`CANDIDATES` items, SIFT
keypoints of the query are matched to the item's catalog photo (as RootSIFT, Lowe's ratio
0.8), a homography is fitted robustly (8 px), and the matches it keeps are counted, each
keypoint once on either side. An item with several photos (front, back, a photo taken in
the shop) is matched to the ones its vectors say the view resembles most
(:func:`best_photos`: by default one, so a candidate costs what it did with one photo) and
counts its best. An item with at least :data:`MIN_INLIERS` is verified;
verified items come first. An item whose photo has fewer keypoints than that (a plain,
untextured product) can never verify and keeps its vector place.

A homography maps one plane, and a real object seen from another side is several: a box's
faces (three at most from any one viewpoint), a building's façades, a board held up in
front of a room. So up to :data:`PLANES` homographies are fitted in turn, each on the
matches the ones before left, and a further plane counts only with :data:`MIN_INLIERS` of
its own (a stray few never add). A flat catalog photo seen as a flat photo is one plane
and counts as before. When this was adopted, among the real-view set's verified pairs the
query's own item showed a second plane in 15 of 39 (13.6 more inliers on average), a wrong
item in 8 of 79 (2.2), and in the generated clutter and variant views (flat photos) the
own item in none of 413; scripts/bench_quality.py measures it against one plane side by
side ("one plane" rows).

Among verified items the vector's order stands unless a later item has significantly more
inliers: more by over :data:`SIGNIFICANCE` standard deviations of the difference of two
Poisson counts (2·sqrt(a+b)). Without that guard, two colour variants of one product
(the same keypoints in grey) would be ordered by the noise in their counts: measured on
hue-shifted twins of the sample photos, plain inlier ordering fell from 0.91 to 0.79
top-1, the guarded order kept 0.91. These parameters are textbook values fixed before
measuring (scripts/bench_quality.py has the figures).

The number of candidates is a budget, not a textbook value: each costs a keypoint match and a
fit. 15 rather than 10 because a catalog can hold a family of near-duplicates larger than 10
(the real-view set's thirteen chessboard poses), whose vector order is noise: with 10, a
pose ranked 12th by its vector was never verified (scripts/bench_verify.py measures 5, 10
and 15 side by side).

The fit is OpenCV's USAC (:data:`ESTIMATOR`: GC-RANSAC's local optimisation, with SPRT
dropping a hypothesis as soon as it is clearly worse) rather than plain RANSAC. Many
candidates are wrong items, whose few stray matches leave RANSAC no early stop: it runs all
its 2000 hypotheses. Measured side by side on the same matches (scripts/bench_verify.py):
0.22 ms per fit on average against 2.81 ms, the same inliers (27.1 per pair against 27.0,
410 of 1341 pairs verified by either), 119 ms per message against 153 ms (one plane each),
and top-1 within one query on every set. Fitting up to three planes costs no more than the
noise of that figure (110 ms per message in the same run). USAC's generator starts from a
fixed state, so the same message always gets the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from edgelens.featurizer.local_features import LocalFeatures, extract_local_features
from edgelens.wire.records import Match

CANDIDATES = 15  # the default of settings.search.verify_candidates
MIN_INLIERS = 15
PLANES = 3
RATIO = 0.8
RANSAC_PX = 8.0
SIGNIFICANCE = 2.0
ESTIMATOR = cv2.USAC_ACCURATE  # an OpenCV findHomography method; cv2.RANSAC is the baseline


def ratio_matches(query: LocalFeatures, item: LocalFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Lowe's ratio test: (query index, item index) of each query keypoint whose nearest
    item descriptor is clearly nearer than the second nearest, in query order.

    The same pairs as OpenCV's brute-force ``knnMatch(k=2)`` (squared distances from one
    matrix product instead of its per-pair loop: twice as fast on one core, measured in
    scripts/bench_verify.py, which also counts how often the two disagree).
    """
    if len(query) < 1 or len(item) < 2:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    q, c = query.matching_descriptors_n128, item.matching_descriptors_n128
    squared = (
        np.einsum("ij,ij->i", q, q)[:, None] + np.einsum("ij,ij->i", c, c)[None, :] - 2 * q @ c.T
    )
    two = np.argpartition(squared, 1, axis=1)[:, :2]
    rows = np.arange(len(q))
    nearest, second = squared[rows, two[:, 0]], squared[rows, two[:, 1]]
    good = np.maximum(nearest, 0) < RATIO**2 * np.maximum(second, 0)
    return rows[good], two[good, 0]


def count_inliers(
    query: LocalFeatures,
    item: LocalFeatures,
    *,
    estimator: int = ESTIMATOR,
    planes: int = PLANES,
) -> int:
    """Keypoint matches consistent with up to ``planes`` plausible homographies (0 when
    none is), fitted in turn by ``estimator`` (an OpenCV ``findHomography`` method), each
    on the matches the ones before left; a plane after the first counts only with
    MIN_INLIERS of its own."""
    query_idx, item_idx = ratio_matches(query, item)
    total, item_points_used = 0, set()
    for plane in range(planes):
        kept = _fit_plane(query.xy_n2[query_idx], item.xy_n2[item_idx], estimator)
        if kept is None:
            break
        # Many query points matched onto a few item points is a collapse, not an object;
        # an item point an earlier plane explained is not evidence twice.
        item_points = set(item_idx[kept].tolist()) - item_points_used
        count = min(len(set(query_idx[kept].tolist())), len(item_points))
        if plane and count < MIN_INLIERS:
            break  # a stray few on another plane are no evidence
        total += count
        if count < MIN_INLIERS:
            break  # the item does not verify; another plane cannot be larger than this one
        item_points_used |= item_points
        query_idx, item_idx = query_idx[~kept], item_idx[~kept]
    return total


def _fit_plane(query_xy: np.ndarray, item_xy: np.ndarray, estimator: int) -> np.ndarray | None:
    """Which matches one robustly fitted, plausible homography keeps; None without one."""
    if len(query_xy) < 8:
        return None
    homography, mask = cv2.findHomography(query_xy, item_xy, estimator, RANSAC_PX)
    if homography is None or not _plausible(homography):
        return None
    return mask.ravel().astype(bool)


def _plausible(homography: np.ndarray) -> bool:
    """A homography a real view gives: orientation kept, area scaled within 1/100..100."""
    det = float(np.linalg.det(homography[:2, :2]))
    return 0.01 < det < 100


@dataclass(frozen=True)
class PhotoKeypoints:
    """One catalog photo's keypoints, with the vector rows the index holds for it: those
    tell which of an item's photos a view resembles most."""

    features: LocalFeatures
    vectors: np.ndarray  # (n, dim) unit rows; (0, dim) when unknown


def best_photos(
    photos: Sequence[PhotoKeypoints], queries: np.ndarray, count: int
) -> list[LocalFeatures]:
    """The keypoints of the ``count`` photos that could verify (MIN_INLIERS keypoints or
    more) whose vectors come nearest any of the ``queries`` (a (q, dim) matrix); photos
    without vectors rank last, in their order."""
    usable = [p for p in photos if len(p.features) >= MIN_INLIERS]
    if len(usable) > count:
        usable.sort(key=lambda p: _nearest(p.vectors, queries), reverse=True)
    return [p.features for p in usable[:count]]


def _nearest(vectors: np.ndarray, queries: np.ndarray) -> float:
    if not len(vectors) or vectors.shape[1] != queries.shape[1]:
        return -math.inf
    return float((vectors @ queries.T).max())


def verified_order(
    matches: Sequence[Match], inliers: dict[str, int], unjudged: frozenset[str] = frozenset()
) -> list[Match]:
    """Verified matches first (see the module docstring), then the rest in vector order.

    ``unjudged`` items keep their places: their catalog photos have too few keypoints ever
    to verify (a plain, untextured product), so verification has no evidence against them
    and must not put a textured neighbour above them for that alone.
    """
    judged = [m for m in matches if m.item_id not in unjudged]
    reordered = iter(_verified_first(judged, inliers))
    return [m if m.item_id in unjudged else next(reordered) for m in matches]


def _verified_first(matches: Sequence[Match], inliers: dict[str, int]) -> list[Match]:
    verified = [m for m in matches if inliers.get(m.item_id, 0) >= MIN_INLIERS]
    ordered = []
    while verified:
        best = verified[0]
        for match in verified[1:]:
            a, b = inliers[match.item_id], inliers[best.item_id]
            if a - b > SIGNIFICANCE * math.sqrt(a + b):
                best = match
        ordered.append(best)
        verified.remove(best)
    return ordered + [m for m in matches if m not in ordered]


def verify(
    matches: Sequence[Match],
    query: LocalFeatures,
    features_of: Callable[[str], Sequence[LocalFeatures]],
    *,
    candidates: int = CANDIDATES,
    estimator: int = ESTIMATOR,
    planes: int = PLANES,
) -> tuple[list[Match], dict[str, int]]:
    """The first ``candidates`` matches re-ranked by verification, each with its verdict
    (``Match.verified``), the rest after them; also the inlier counts (an item's best over
    the photos ``features_of`` gives for it). Each photo matched costs a keypoint match and
    a homography fit (docs/benchmarks.md, "Verification budget"); photos with fewer than
    MIN_INLIERS stored keypoints are not matched, and an item with no other (or none
    stored) could never verify: it counts 0, keeps its place and gets no verdict."""
    head, tail = list(matches[:candidates]), list(matches[candidates:])
    inliers, unjudged = {}, set()
    for match in head:
        photos = [f for f in features_of(match.item_id) if len(f) >= MIN_INLIERS]
        if not photos:
            unjudged.add(match.item_id)
            inliers[match.item_id] = 0
        else:
            inliers[match.item_id] = max(
                count_inliers(query, photo, estimator=estimator, planes=planes) for photo in photos
            )
    with_verdicts = [
        m if m.item_id in unjudged else replace(m, verified=inliers[m.item_id] >= MIN_INLIERS)
        for m in head
    ]
    return verified_order(with_verdicts, inliers, frozenset(unjudged)) + tail, inliers


def verify_view(
    matches: Sequence[Match],
    view: np.ndarray,
    features_of: Callable[[str], Sequence[LocalFeatures]],
    *,
    candidates: int = CANDIDATES,
    planes: int = PLANES,
) -> list[Match]:
    """:func:`verify` from the focus view a device sends (decoded: BGR or grey), as the
    worker answers it and ``edgelens eval`` measures it."""
    reranked, _ = verify(
        matches, extract_local_features(view), features_of, candidates=candidates, planes=planes
    )
    return reranked
