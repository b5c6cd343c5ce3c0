"""Spatial verification's budget: what the keypoints kept per catalog photo and the form they
are stored in, the size the worker extracts the query view at, the number of candidates
verified, how descriptors are compared (RootSIFT or plain SIFT), how the homography is
fitted (USAC or plain RANSAC) and how many planes may hold the inliers (several, or one)
cost (bytes stored per item, ms to decode a stored item, worker ms per message on one core)
and give (top-1/top-5), against the vector search alone, on the same rankings in the same
run.

Verification is the worker's dearest step and its keypoints the catalog's largest part;
this measures how much of either can go before the answers change. Query sets and seeds
are bench_quality's: clutter among catalog photos (strict, and with the other catalog items
in view ignored), clutter among other photos, the real views; and camera views in dim light
(bench_quality's camera-like views at a quarter of their contrast, as at a shelf's dark
end), which is what equalising contrast is for.
"""

from __future__ import annotations

import os

# Figures per core: numpy's BLAS held to one thread as OpenCV is below (set before import).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import logging
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import common_arguments, publish
from edgelens.catalog.augment import DEFAULT_RECIPE
from edgelens.catalog.sources import collect_sources
from edgelens.cloud.answer import AnswerPolicy
from edgelens.evaluation.real_views import fetch_real_views, real_view_query_sets
from edgelens.evaluation.runner import (
    IN_VIEW_IGNORED,
    VIEW_SENT,
    CatalogCache,
    Ranked,
    System,
    clutter_queries,
    load_catalog,
    metrics_of,
    rank_queries,
    synthetic_queries,
    system_answerer,
)
from edgelens.featurizer.focus import decode_focus_view, focus_view_jpeg
from edgelens.featurizer.local_features import (
    CATALOG_KEYPOINTS,
    MAX_KEYPOINTS,
    MAX_SIDE,
    LocalFeatures,
    catalog_local_features,
    extract_local_features,
    keep_largest,
    legacy_from_blobs,
    legacy_to_blobs,
    sift_keypoints,
)
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import write_sample_catalog
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
from edgelens.settings import VIEW_BYTES
from edgelens.wire.records import Match

DIM_CONTRAST, DIM_LEVEL = 0.25, 15  # a dim view: grey levels x 0.25 + 15
DIM = "camera views, dim"
ESTIMATORS = {"USAC": cv2.USAC_ACCURATE, "RANSAC": cv2.RANSAC}  # the product's, the baseline
COMPACT, FULL = "OPQ codes", "uint8 SIFT"  # how a catalog photo's keypoints are stored
LARGEST = f"{CATALOG_KEYPOINTS} largest"  # of MAX_KEYPOINTS, as the catalog keeps them
EQUALISED, AS_SHOT = "CLAHE", "as shot"  # the contrast SIFT sees: the product's, before
# (keypoints per catalog photo, stored as, side the worker extracts the view at, candidates
# verified, descriptors matched as, homography fitted by, planes, contrast); the product's
# first, then the product before equalising contrast, before the compact form, the same
# keypoints at full precision, the product before several planes, before USAC, and before
# RootSIFT and 15 candidates.
BUDGETS = [
    (LARGEST, COMPACT, MAX_SIDE, CANDIDATES, "RootSIFT", "USAC", PLANES, EQUALISED),
    (LARGEST, COMPACT, MAX_SIDE, CANDIDATES, "RootSIFT", "USAC", PLANES, AS_SHOT),
    (MAX_KEYPOINTS, FULL, MAX_SIDE, CANDIDATES, "RootSIFT", "USAC", PLANES, AS_SHOT),
    (LARGEST, FULL, MAX_SIDE, CANDIDATES, "RootSIFT", "USAC", PLANES, AS_SHOT),
    (MAX_KEYPOINTS, FULL, MAX_SIDE, CANDIDATES, "RootSIFT", "USAC", 1, AS_SHOT),
    (MAX_KEYPOINTS, FULL, MAX_SIDE, CANDIDATES, "RootSIFT", "RANSAC", 1, AS_SHOT),
    (MAX_KEYPOINTS, FULL, MAX_SIDE, 10, "SIFT", "RANSAC", 1, AS_SHOT),
    (MAX_KEYPOINTS, FULL, MAX_SIDE, CANDIDATES, "SIFT", "USAC", PLANES, AS_SHOT),
    (MAX_KEYPOINTS, FULL, MAX_SIDE, 10, "RootSIFT", "USAC", PLANES, AS_SHOT),
    (MAX_KEYPOINTS, FULL, MAX_SIDE, 5, "RootSIFT", "USAC", PLANES, AS_SHOT),
    (500, FULL, MAX_SIDE, CANDIDATES, "RootSIFT", "USAC", PLANES, AS_SHOT),
    (250, FULL, MAX_SIDE, CANDIDATES, "RootSIFT", "USAC", PLANES, AS_SHOT),
    (MAX_KEYPOINTS, FULL, 320, CANDIDATES, "RootSIFT", "USAC", PLANES, AS_SHOT),
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


def _stored(
    image: np.ndarray, keypoints: int | str, stored: str, *, equalise: bool
) -> tuple[LocalFeatures, tuple[bytes, bytes]]:
    """A catalog photo's keypoints as the catalog would give them back, and the blobs it
    would store for them."""
    if stored == COMPACT:
        if keypoints != LARGEST:
            raise ValueError(f"the compact form keeps the {LARGEST} keypoints")
        features = catalog_local_features(image, equalise=equalise)
        return features, features.to_blobs()
    if keypoints == LARGEST:
        features = keep_largest(*sift_keypoints(image, MAX_KEYPOINTS, MAX_SIDE, equalise=equalise))
    else:
        features = extract_local_features(image, max_keypoints=keypoints, equalise=equalise)
    return features, legacy_to_blobs(features)


def _dim(image: np.ndarray) -> np.ndarray:
    return np.clip(image.astype(np.float32) * DIM_CONTRAST + DIM_LEVEL, 0, 255).astype(np.uint8)


def _decode_ms(blobs: tuple[bytes, bytes], stored: str) -> float:
    """What reading one stored candidate back costs the worker: its blobs to the
    descriptors it is matched by."""
    started = time.perf_counter()
    read = LocalFeatures.from_blobs if stored == COMPACT else legacy_from_blobs
    read(*blobs).matching_descriptors_n128  # noqa: B018 - the work measured
    return (time.perf_counter() - started) * 1000


Rankings = list[Ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clutter", type=int, default=10, help="clutter views per photo")
    parser.add_argument("--seed", type=int, default=1000, help="bench_quality's seed")
    parser.add_argument(
        "--budgets",
        type=lambda text: [int(n) for n in text.split(",")],
        default=None,
        help="which rows of BUDGETS to measure, e.g. 0,1,2 (default: all)",
    )
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
        DIM: [
            replace(q, image_bgr=_dim(q.image()))
            for q in synthetic_queries(images, args.clutter // 2, args.seed)
        ],
    }
    real_photos = load_catalog(collect_sources([real_set.catalog_dir]))
    real_sets = {"real views": real_view_query_sets(real_set)["real views"]}
    # The vector search alone, as the worker's second stage runs it before verifying: the
    # frame's vector and the focus view's boxes, each item scoring its best.
    vectors_only = System(
        "vectors only",
        featurizer,
        DEFAULT_RECIPE,
        policy=AnswerPolicy(top_k=1, view_focus=True, verify=False),
        sends=VIEW_SENT,
    )
    for catalog, query_sets in ((photos, sample_sets), (real_photos, real_sets)):
        answerer = system_answerer(vectors_only, catalog, CatalogCache())
        suites.append(
            (
                catalog,
                {
                    name: rank_queries(featurizer, answerer, queries, sends=VIEW_SENT)
                    for name, queries in query_sets.items()
                },
            )
        )
    views = {  # what the devices send, made once
        id(r.query): focus_view_jpeg(r.query.image(), VIEW_BYTES)
        for _, sets in suites
        for rankings in sets.values()
        for r in rankings
    }

    rows = [("vectors only", "", "", "", "", "", "", "", [0], [0.0], 0.0, _figures(suites))]
    cv2.setNumThreads(1)  # a core's work per message (the worker lets OpenCV use them all)
    pairs = []  # (view keypoints, candidate keypoints) of the first budget measured
    chosen = args.budgets if args.budgets is not None else range(len(BUDGETS))
    for budget in chosen:
        keypoints, stored_as, side, candidates, descriptors, fitted_by, planes, contrast = BUDGETS[
            budget
        ]
        equalise = contrast == EQUALISED
        verified_sets, bytes_per_item, decode_ms, message_ms = [], [], [], []
        for catalog, sets in suites:
            stored = {}
            for p in catalog:
                features, blobs = _stored(p.image_bgr, keypoints, stored_as, equalise=equalise)
                stored[p.item.item_id] = _as(descriptors, features)
                bytes_per_item.append(sum(map(len, blobs)))
                decode_ms.append(_decode_ms(blobs, stored_as))
            verified = {}
            for name, rankings in sets.items():
                verified[name] = []
                for r in rankings:
                    query, ranked = r.query, r.ranked
                    if budget == chosen[0] and len(pairs) < 2000:
                        view = decode_focus_view(views[id(query)])
                        query_features = extract_local_features(view, equalise=equalise)
                        pairs += [(query_features, stored[i]) for i in ranked[:3]]
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
                        equalise=equalise,
                    )
                    message_ms.append((time.perf_counter() - started) * 1000)
                    verified[name].append(Ranked(query, found))
            verified_sets.append((catalog, verified))
        rows.append(
            (
                str(keypoints),
                stored_as,
                f"{side} px",
                str(candidates),
                descriptors,
                fitted_by,
                str(planes),
                contrast,
                bytes_per_item,
                decode_ms,
                statistics.median(message_ms),
                _figures(verified_sets),
            )
        )

    set_names = [name for _, sets in suites for name in sets] + [IN_VIEW_IGNORED.format("clutter")]
    lines = [
        f"{len(photos)} sample photos with {len(sample_sets['clutter'])} clutter views of each "
        f"kind and {len(sample_sets[DIM])} camera views in dim light (the first "
        f"{args.clutter // 2} of bench_quality's camera-like views of each photo, grey "
        f"levels x {DIM_CONTRAST} + {DIM_LEVEL}, as at a shelf's dark end), and the "
        f"real-view set ({len(real_sets['real views'])} queries, "
        f"{len(real_photos)} items); FP32 R-GeM vectors with the focus view's boxes rank "
        "every query once, then each budget verifies the best candidates as the worker does "
        "(decode the device's view, extract its keypoints at the side given, match and fit "
        "against each candidate's stored keypoints). Bytes are what the catalog stores per "
        "photo, on average and at most (photos with little texture keep fewer keypoints): "
        f"'{FULL}' is float32 positions and uint8 descriptors, 136 bytes a keypoint; "
        f"'{COMPACT}' the catalog's compact form, uint16 positions and 16-byte codes of "
        "the RootSIFT descriptors (edgelens.featurizer.local_features), 20 bytes a keypoint; "
        f"'{LARGEST}' keeps the largest of SIFT's {MAX_KEYPOINTS} keypoints. Decode ms is "
        "the mean cost of reading one stored candidate back into the descriptors it is "
        "matched by (the worker holds what it read); worker ms is the median per message "
        "with OpenCV and numpy on one core. The first budget is the product's "
        "(settings.search.verify_candidates sets the fourth column), the second the one it "
        "replaced (contrast as shot), the third the one before that (every keypoint at full "
        "precision), the fourth the same keypoints as the second at full precision, the "
        "fifth the one before several planes (one plane), the sixth the one before (plain "
        "RANSAC), the seventh the one before that (10 candidates, plain SIFT); "
        "'matched as' is how the same stored descriptors are compared: RootSIFT (the "
        "product) or plain SIFT (the baseline); 'fitted by' is the homography's robust "
        "estimator: OpenCV's USAC_ACCURATE (the product) or plain RANSAC (the baseline); "
        "'planes' is how many homographies are fitted in turn, each on the matches the ones "
        "before left, a further one counting with at least "
        f"{MIN_INLIERS} inliers of its own; 'contrast' is what SIFT sees, of the catalog "
        f"photo and of the view alike: '{EQUALISED}' equalised by tiles "
        "(edgelens.featurizer.local_features.EQUALISE_CLIP, the product) or "
        f"'{AS_SHOT}' (the baseline).",
        "",
        "| catalog keypoints | stored as | view extracted at | candidates | matched as | "
        "fitted by | planes | contrast | bytes / item (mean, max) | at 1M items | "
        "decode ms / item | worker ms / message | "
        + " | ".join(f"{n} top-1 / top-5" for n in set_names)
        + " |",
        "| --- | --- | --- | ---: | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | "
        + " | ".join("---:" for _ in set_names)
        + " |",
    ]
    for *budget_cells, item_bytes, decode_ms, ms, figures in rows:
        cells = " | ".join(f"{figures[n][0]:.3f} / {figures[n][1]:.3f}" for n in set_names)
        mean_bytes = statistics.mean(item_bytes)
        lines.append(
            f"| {' | '.join(budget_cells)} | "
            f"{mean_bytes:,.0f}, {max(item_bytes):,} | "
            f"{mean_bytes * 1e6 / 1e9:.1f} GB | {statistics.mean(decode_ms):.2f} | "
            f"{ms:.1f} | {cells} |"
        )
    lines += ["", *_ratio_test_side_by_side(pairs), "", *_fit_side_by_side(pairs)]
    body = "\n".join(lines)
    publish("verification-budget", "## Verification budget\n\n" + body, write=not args.no_write)


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
    equalise: bool,
) -> list[str]:
    """The worker's verification of one message, with the view extracted at ``side``."""
    view = decode_focus_view(view_jpeg)
    query = _as(descriptors, extract_local_features(view, max_side=side, equalise=equalise))
    matches = [Match(item_id, "", None, "EUR", True, 0.0) for item_id in ranked]
    reranked, _ = verify(
        matches,
        query,
        lambda item_id: [stored[item_id]] if item_id in stored else [],
        candidates=candidates,
        estimator=ESTIMATORS[fitted_by],
        planes=planes,
    )
    return [m.item_id for m in reranked]


def _ratio_matches_before(query, item) -> tuple[np.ndarray, np.ndarray]:
    """The product's ratio test before: the whole distance matrix, partitioned per row."""
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


def _ratio_test_side_by_side(pairs: list) -> list[str]:
    """Lowe's ratio test as the product runs it against OpenCV's brute-force matcher and
    against the product's before, on the same keypoint pairs, one core: ms per pair and how
    many pairs they match apart."""
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    times: dict[str, list[float]] = {"opencv": [], "before": [], "ours": []}
    differ = differ_before = 0
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
        query_idx, item_idx = _ratio_matches_before(query, item)
        times["before"].append(time.perf_counter() - started)
        differ_before += list(zip(query_idx.tolist(), item_idx.tolist(), strict=True)) != theirs
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
        f"| one matrix product, each row partitioned (before) | {ms['before']:.2f} | "
        f"{differ_before} of {len(pairs)} |",
        f"| one matrix product, two minima in place (edgelens.search.verify.ratio_matches) | "
        f"{ms['ours']:.2f} | {differ} of {len(pairs)} |",
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
            if any(r.query.also_in_view for r in rankings):
                lenient = metrics_of(rankings, ignore_in_view=True)
                figures[IN_VIEW_IGNORED.format(name)] = (lenient.top1, lenient.top5)
    return figures


if __name__ == "__main__":
    main()
