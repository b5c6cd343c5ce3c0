"""Spatial verification's budget: what the keypoints kept per catalog photo, the size the
worker extracts the query view at, the number of candidates verified, how descriptors are
compared (RootSIFT or plain SIFT), how the homography is fitted (USAC or plain RANSAC) and
how many planes may hold the inliers (several, or one) cost (bytes stored per item, worker
ms per message on one core) and give (top-1/top-5), against the vector search alone, on the
same rankings in the same run.

Verification is the worker's dearest step and its keypoints the catalog's largest part;
this measures how much of either can go before the answers change. Query sets and seeds
are bench_quality's: clutter among catalog photos (strict, and with the other catalog items
in view ignored), clutter among other photos, the real views.
"""

from __future__ import annotations

import os

# Figures per core: numpy's BLAS held to one thread as OpenCV is below (set before import).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import common_arguments, write_section

from edgelens.catalog.sources import collect_sources
from edgelens.evaluation.real_views import fetch_real_views, real_view_query_sets
from edgelens.evaluation.runner import (
    IN_VIEW_IGNORED,
    Query,
    catalog_index,
    clutter_queries,
    load_catalog,
    metrics_of,
    rank_queries,
)
from edgelens.evaluation.sample_photos import write_sample_catalog
from edgelens.featurizer.focus import decode_focus_view, focus_view_jpeg
from edgelens.featurizer.local_features import (
    MAX_KEYPOINTS,
    MAX_SIDE,
    LocalFeatures,
    extract_local_features,
)
from edgelens.featurizer.runtime import Featurizer
from edgelens.search.verify import (
    CANDIDATES,
    MIN_INLIERS,
    PLANES,
    RANSAC_PX,
    RATIO,
    count_inliers,
    ratio_matches,
    verify,
)
from edgelens.wire.features import MAX_JPEG_BYTES
from edgelens.wire.records import Match

ESTIMATORS = {"USAC": cv2.USAC_ACCURATE, "RANSAC": cv2.RANSAC}  # the product's, the baseline
# (keypoints per catalog photo, side the worker extracts the view at, candidates verified,
# descriptors matched as, homography fitted by, planes); the product's first, then the
# product before several planes, before USAC, and before RootSIFT and 15 candidates.
BUDGETS = [
    (MAX_KEYPOINTS, MAX_SIDE, CANDIDATES, "RootSIFT", "USAC", PLANES),
    (MAX_KEYPOINTS, MAX_SIDE, CANDIDATES, "RootSIFT", "USAC", 1),
    (MAX_KEYPOINTS, MAX_SIDE, CANDIDATES, "RootSIFT", "RANSAC", 1),
    (MAX_KEYPOINTS, MAX_SIDE, 10, "SIFT", "RANSAC", 1),
    (MAX_KEYPOINTS, MAX_SIDE, CANDIDATES, "SIFT", "USAC", PLANES),
    (MAX_KEYPOINTS, MAX_SIDE, 10, "RootSIFT", "USAC", PLANES),
    (MAX_KEYPOINTS, MAX_SIDE, 5, "RootSIFT", "USAC", PLANES),
    (500, MAX_SIDE, CANDIDATES, "RootSIFT", "USAC", PLANES),
    (250, MAX_SIDE, CANDIDATES, "RootSIFT", "USAC", PLANES),
    (MAX_KEYPOINTS, 320, CANDIDATES, "RootSIFT", "USAC", PLANES),
]


class _PlainSift(LocalFeatures):
    """The same keypoints and stored descriptors, matched as plain SIFT (the baseline)."""

    @property
    def matching_descriptors_n128(self) -> np.ndarray:
        return self.descriptors_n128


def _as(descriptors: str, features: LocalFeatures) -> LocalFeatures:
    if descriptors == "RootSIFT":
        return features
    return _PlainSift(features.xy_n2, features.descriptors_n128)


Rankings = list[tuple[Query, list[str]]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clutter", type=int, default=10, help="clutter views per photo")
    parser.add_argument("--seed", type=int, default=1000, help="bench_quality's seed")
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    featurizer = Featurizer.from_models_dir(args.models_dir, "fp32", "rgem", providers=["cpu"])
    real_set = fetch_real_views(args.models_dir.parent / "real-views")

    suites = []  # (catalog photos, {set name: vector-only rankings})
    with tempfile.TemporaryDirectory() as tmp:
        photos = load_catalog(collect_sources([write_sample_catalog(Path(tmp) / "samples")]))
    images = {p.item.item_id: p.image_bgr for p in photos}
    sample_sets = {
        "clutter": clutter_queries(images, args.clutter, args.seed + 1),
        "clutter, other photos": clutter_queries(
            images, args.clutter, args.seed + 2, backgrounds=real_set.backgrounds()
        ),
    }
    real_photos = load_catalog(collect_sources([real_set.catalog_dir]))
    real_sets = {"real views": real_view_query_sets(real_set)["real views"]}
    for catalog, query_sets in ((photos, sample_sets), (real_photos, real_sets)):
        index = catalog_index(featurizer, catalog)
        suites.append(
            (
                catalog,
                {
                    name: rank_queries(featurizer, index, queries, focus=True)
                    for name, queries in query_sets.items()
                },
            )
        )
    views = {  # what the devices send, made once
        id(query): focus_view_jpeg(query.image_bgr, MAX_JPEG_BYTES)
        for _, sets in suites
        for rankings in sets.values()
        for query, _ in rankings
    }

    rows = [("vectors only", "", "", "", "", "", 0, 0.0, _figures(suites))]
    cv2.setNumThreads(1)  # a core's work per message (the worker lets OpenCV use them all)
    pairs = []  # (view keypoints, candidate keypoints) of the product's budget
    for budget, (keypoints, side, candidates, descriptors, fitted_by, planes) in enumerate(BUDGETS):
        verified_sets, bytes_per_item, message_ms = [], [], []
        for catalog, sets in suites:
            stored = {
                p.item.item_id: _as(
                    descriptors, extract_local_features(p.image_bgr, max_keypoints=keypoints)
                )
                for p in catalog
            }
            bytes_per_item += [sum(map(len, f.to_blobs())) for f in stored.values()]
            verified = {}
            for name, rankings in sets.items():
                verified[name] = []
                for query, ranked in rankings:
                    if budget == 0 and len(pairs) < 2000:
                        view = decode_focus_view(views[id(query)])
                        pairs += [(extract_local_features(view), stored[i]) for i in ranked[:3]]
                    started = time.perf_counter()
                    found = _verified(
                        ranked,
                        views[id(query)],
                        stored,
                        side=side,
                        candidates=candidates,
                        descriptors=descriptors,
                        fitted_by=fitted_by,
                        planes=planes,
                    )
                    message_ms.append((time.perf_counter() - started) * 1000)
                    verified[name].append((query, found))
            verified_sets.append((catalog, verified))
        rows.append(
            (
                str(keypoints),
                f"{side} px",
                str(candidates),
                descriptors,
                fitted_by,
                str(planes),
                statistics.mean(bytes_per_item),
                statistics.median(message_ms),
                _figures(verified_sets),
            )
        )

    set_names = [name for _, sets in suites for name in sets] + [IN_VIEW_IGNORED.format("clutter")]
    lines = [
        f"{len(photos)} sample photos with {len(sample_sets['clutter'])} clutter views of each "
        f"kind, and the real-view set ({len(real_sets['real views'])} queries, "
        f"{len(real_photos)} items); FP32 R-GeM vectors with the focus view's boxes rank "
        "every query once, then each budget verifies the best candidates as the worker does "
        "(decode the device's view, extract its keypoints at the side given, match and fit "
        "against each candidate's stored keypoints). Bytes are what the catalog stores per "
        "photo, on average (float32 positions, uint8 descriptors; photos with little "
        "texture keep fewer keypoints); worker ms is the median per message with OpenCV and "
        "numpy on one core. The first budget is the product's "
        "(settings.search.verify_candidates sets the third column), the second the one it "
        "replaced (one plane), the third the one before (plain RANSAC), the fourth the one "
        "before that (10 candidates, plain SIFT); "
        "'matched as' is how the same stored descriptors are compared: RootSIFT (the "
        "product) or plain SIFT (the baseline); 'fitted by' is the homography's robust "
        "estimator: OpenCV's USAC_ACCURATE (the product) or plain RANSAC (the baseline); "
        "'planes' is how many homographies are fitted in turn, each on the matches the ones "
        "before left, a further one counting with at least "
        f"{MIN_INLIERS} inliers of its own.",
        "",
        "| catalog keypoints | view extracted at | candidates | matched as | fitted by | "
        "planes | bytes / item | "
        "at 1M items | worker ms / message | "
        + " | ".join(f"{n} top-1 / top-5" for n in set_names)
        + " |",
        "| --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: | "
        + " | ".join("---:" for _ in set_names)
        + " |",
    ]
    for *budget_cells, item_bytes, ms, figures in rows:
        cells = " | ".join(f"{figures[n][0]:.3f} / {figures[n][1]:.3f}" for n in set_names)
        lines.append(
            f"| {' | '.join(budget_cells)} | "
            f"{item_bytes / 1000:.0f} KB | "
            f"{item_bytes * 1e6 / 1e9:.0f} GB | {ms:.1f} | {cells} |"
        )
    lines += ["", *_ratio_test_side_by_side(pairs), "", *_fit_side_by_side(pairs)]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("verification-budget", "## Verification budget\n\n" + body)


def _verified(
    ranked: list[str],
    view_jpeg: bytes,
    stored: dict,
    *,
    side: int,
    candidates: int,
    descriptors: str,
    fitted_by: str,
    planes: int,
) -> list[str]:
    """The worker's verification of one message, with the view extracted at ``side``."""
    query = _as(descriptors, extract_local_features(decode_focus_view(view_jpeg), max_side=side))
    matches = [Match(item_id, "", None, "EUR", True, 0.0) for item_id in ranked]
    reranked, _ = verify(
        matches,
        query,
        stored.get,
        candidates=candidates,
        estimator=ESTIMATORS[fitted_by],
        planes=planes,
    )
    return [m.item_id for m in reranked]


def _ratio_test_side_by_side(pairs: list) -> list[str]:
    """Lowe's ratio test as the product runs it against OpenCV's brute-force matcher, on
    the same keypoint pairs, one core: ms per pair and how many pairs they match apart."""
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    times: dict[str, list[float]] = {"opencv": [], "ours": []}
    differ = 0
    for query, item in pairs:
        q, c = query.matching_descriptors_n128, item.matching_descriptors_n128  # made once
        started = time.perf_counter()
        knn = matcher.knnMatch(q, c, k=2)
        theirs = [
            (p[0].queryIdx, p[0].trainIdx)
            for p in knn
            if len(p) == 2 and p[0].distance < RATIO * p[1].distance
        ]
        times["opencv"].append(time.perf_counter() - started)
        started = time.perf_counter()
        query_idx, item_idx = ratio_matches(query, item)
        times["ours"].append(time.perf_counter() - started)
        differ += list(zip(query_idx.tolist(), item_idx.tolist(), strict=True)) != theirs
    ms = {name: statistics.median(t) * 1000 for name, t in times.items()}
    return [
        f"The ratio test itself, on the {len(pairs)} (view, candidate) keypoint pairs of the "
        "first budget's best three candidates, one core:",
        "",
        "| ratio test | ms per pair (median) | pairs matched differently |",
        "| --- | ---: | ---: |",
        f"| OpenCV brute-force knnMatch (baseline) | {ms['opencv']:.2f} | |",
        f"| one matrix product (edgelens.search.verify.ratio_matches) | {ms['ours']:.2f} | "
        f"{differ} of {len(pairs)} |",
    ]


def _fit_side_by_side(pairs: list) -> list[str]:
    """The homography fit itself, USAC against plain RANSAC, on the same ratio-test matches
    of the same pairs, one core: ms per fit, and the inlier counts each finds."""
    matched = []
    for query, item in pairs:
        query_idx, item_idx = ratio_matches(query, item)
        if len(query_idx) >= 8:
            matched.append((query.xy_n2[query_idx], item.xy_n2[item_idx]))
    cells = []
    for name, estimator in ESTIMATORS.items():
        times = []
        for source, target in matched:
            started = time.perf_counter()
            cv2.findHomography(source, target, estimator, RANSAC_PX)
            times.append(time.perf_counter() - started)
        counts = [count_inliers(q, c, estimator=estimator, planes=1) for q, c in pairs]  # one fit
        verified = sum(n >= MIN_INLIERS for n in counts)
        cells.append(
            f"| {name} | {statistics.mean(times) * 1000:.2f} | "
            f"{statistics.median(times) * 1000:.2f} | {statistics.mean(counts):.1f} | "
            f"{verified} of {len(pairs)} |"
        )
    return [
        f"The fit itself, on the {len(matched)} of those pairs with at least 8 ratio-test "
        "matches, one core:",
        "",
        "| fitted by | ms per fit (mean) | ms per fit (median) | inliers per pair (mean) | "
        f"pairs with {MIN_INLIERS}+ inliers |",
        "| --- | ---: | ---: | ---: | ---: |",
        *cells,
    ]


def _figures(suites: list[tuple[object, dict[str, Rankings]]]) -> dict[str, tuple[float, float]]:
    """top-1 and top-5 of each set, and of clutter with the catalog items in view ignored."""
    figures = {}
    for _, sets in suites:
        for name, rankings in sets.items():
            metrics = metrics_of(rankings)
            figures[name] = (metrics.top1, metrics.top5)
            if any(query.also_in_view for query, _ in rankings):
                lenient = metrics_of(rankings, ignore_in_view=True)
                figures[IN_VIEW_IGNORED.format(name)] = (lenient.top1, lenient.top5)
    return figures


if __name__ == "__main__":
    main()
