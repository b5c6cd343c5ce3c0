"""Spatial verification: re-rank the vector search's best candidates by matched keypoints.

The global vector nearly always has the right item among its first few but misorders
near-duplicates and objects among other things. For each of the first :data:`CANDIDATES`
items, the query's SIFT keypoints are matched to the item's catalog photos as RootSIFT
(Lowe's ratio test) and up to :data:`PLANES` homographies are fitted in turn, each on the
matches the ones before left (a real object is several planes: a box's faces, a building's
façades); a further plane counts only with :data:`MIN_INLIERS` of its own, and a keypoint
counts once on either side. An item with several photos is matched to those its vectors say
the view resembles most (:func:`best_photos`) and counts its best; one that reaches
MIN_INLIERS is verified and comes first. Among verified items the vector's order stands
unless a later one has more inliers by over :data:`SIGNIFICANCE` standard deviations of the
difference of two Poisson counts, so colour variants (the same keypoints in grey) are not
ordered by noise. An item whose photos have too few keypoints ever to verify keeps its place.

The fit is USAC (:data:`ESTIMATOR`) rather than plain RANSAC because the stray matches of
wrong candidates give RANSAC no early stop; its generator starts from a fixed state, so the
same message always gets the same answer. The ratio, the reprojection error and the
significance are textbook values fixed before measuring; MIN_INLIERS was measured (the fewest
that no view of an unknown thing reached); CANDIDATES is a budget (each costs a keypoint match
and a fit), large enough for a family of near-duplicates (docs/decisions.md).
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
MIN_INLIERS = 10
PLANES = 3
RATIO = 0.8
RANSAC_PX = 8.0
SIGNIFICANCE = 2.0
ESTIMATOR = cv2.USAC_ACCURATE  # an OpenCV findHomography method; cv2.RANSAC is the baseline


def ratio_matches(query: LocalFeatures, item: LocalFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Lowe's ratio test: (query index, item index) of each query keypoint whose nearest
    item descriptor is clearly nearer than the second nearest, in query order.

    The same pairs as OpenCV's brute-force ``knnMatch(k=2)``, from one matrix product
    instead of its per-pair loop; the two nearest of each row by a minimum, the nearest
    masked, and a second minimum, in place, rather than a partition of a fresh distance
    matrix (both faster, docs/decisions.md).
    """
    if len(query) < 1 or len(item) < 2:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    q, c = query.matching_descriptors_n128, item.matching_descriptors_n128
    # |q - c|² less |q|², which orders each row alike: |c|² - 2 q·c, in the product's buffer
    squared = q @ c.T
    squared *= -2
    squared += np.einsum("ij,ij->i", c, c)
    rows = np.arange(len(q))
    nearest_at = squared.argmin(axis=1)
    nearest = squared[rows, nearest_at]
    squared[rows, nearest_at] = np.inf
    second = squared.min(axis=1)
    own = np.einsum("ij,ij->i", q, q)
    nearest += own
    second += own
    good = np.maximum(nearest, 0) < RATIO**2 * np.maximum(second, 0)
    return rows[good], nearest_at[good]


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
