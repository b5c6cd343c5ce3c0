"""Make the codebook the catalog's keypoint descriptors are stored with
(edgelens/featurizer/keypoint_codebook.npz; see edgelens.featurizer.local_features).

An optimised product quantiser (Ge et al., "Optimized Product Quantization", 2013, the
non-parametric form) of RootSIFT, trained on generic photos: the photos scikit-image ships
(the demo catalog's), each at three sizes and in two seeded camera-like views, so that the
centroids see keypoints of several scales, blur and light. Seeded: the same input gives
the same file. A new codebook codes descriptors differently, so it needs a new
``METHOD_ID`` (old rows are then re-made by ``edgelens catalog migrate-keypoints``).

    python -m tools.train_keypoint_codebook [--out PATH]
"""

from __future__ import annotations

import os

# One BLAS thread: sums in a fixed order, so the same input gives the same file bit for bit.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from edgelens.featurizer import local_features
from edgelens.featurizer.local_features import (
    CENTROIDS,
    DESCRIPTOR_SIZE,
    SUBVECTORS,
    Codebook,
    extract_local_features,
)
from edgelens.samples.photos import (
    SAMPLE_PHOTOS,
    load_motorcycle_right_view,
    load_photo,
)
from edgelens.samples.views import camera_views

logger = logging.getLogger(__name__)

SIDES = (640, 480, 320)  # each photo's keypoints at these sizes
VIEWS = 2  # and in this many camera-like views
SEED = 0
ROUNDS = 6  # of rotation then centroids
KMEANS_ITERATIONS = 20  # the first centroids; each round refines them by ROUND_ITERATIONS
ROUND_ITERATIONS = 6


def training_descriptors(seed: int = SEED) -> np.ndarray:
    """RootSIFT descriptors of the generic photos, as float64 rows."""
    photos = [load_photo(p.loader) for p in SAMPLE_PHOTOS] + [load_motorcycle_right_view()]
    rows = []
    for n, photo in enumerate(photos):
        images = list(camera_views(photo, VIEWS, seed=seed + n))
        rows += [extract_local_features(photo, max_side=side) for side in SIDES]
        rows += [extract_local_features(image) for image in images]
    return np.concatenate([f.matching_descriptors_n128 for f in rows]).astype(np.float64)


def train(descriptors: np.ndarray, seed: int = SEED) -> Codebook:
    """Rotation and centroids minimising the coding error of ``descriptors``: start from
    the principal axes dealt out to the sub-vectors in turn (each gets strong and weak
    ones), then alternate k-means on the rotated pieces with the rotation that best maps
    the descriptors onto their codes (orthogonal Procrustes)."""
    rng = np.random.default_rng(seed)
    rotation = _balanced_principal_axes(descriptors)
    centroids = _kmeans_pieces(descriptors @ rotation, None, KMEANS_ITERATIONS, rng)
    for round_ in range(ROUNDS):
        coded = _decode(_encode(descriptors @ rotation, centroids), centroids)
        u, _, vt = np.linalg.svd(descriptors.T @ coded)
        rotation = u @ vt
        centroids = _kmeans_pieces(descriptors @ rotation, centroids, ROUND_ITERATIONS, rng)
        error = _coding_error(descriptors, rotation, centroids)
        logger.info("round %d: mean squared coding error %.4f", round_ + 1, error)
    return Codebook(rotation.astype(np.float32), centroids.astype(np.float32))


def _balanced_principal_axes(x: np.ndarray) -> np.ndarray:
    """Principal axes, strongest first, dealt to the sub-vectors back and forth
    (0..15, 15..0, ...) so that each sub-vector's share of the variance is alike."""
    values, vectors = np.linalg.eigh(np.cov(x.T))
    vectors = vectors[:, np.argsort(-values)]
    pieces: list[list[int]] = [[] for _ in range(SUBVECTORS)]
    for axis in range(DESCRIPTOR_SIZE):
        turn, place = divmod(axis, SUBVECTORS)
        pieces[place if turn % 2 == 0 else SUBVECTORS - 1 - place].append(axis)
    return vectors[:, [axis for piece in pieces for axis in piece]]


def _kmeans_pieces(
    x: np.ndarray, start: np.ndarray | None, iterations: int, rng: np.random.Generator
) -> np.ndarray:
    width = DESCRIPTOR_SIZE // SUBVECTORS
    return np.stack(
        [
            _kmeans(
                x[:, i * width : (i + 1) * width],
                _kmeans_plus_plus(x[:, i * width : (i + 1) * width], rng)
                if start is None
                else start[i],
                iterations,
            )
            for i in range(SUBVECTORS)
        ]
    )


def _kmeans_plus_plus(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    centres = np.empty((CENTROIDS, x.shape[1]))
    centres[0] = x[rng.integers(len(x))]
    nearest = ((x - centres[0]) ** 2).sum(axis=1)
    for j in range(1, CENTROIDS):
        centres[j] = x[rng.choice(len(x), p=nearest / nearest.sum())]
        nearest = np.minimum(nearest, ((x - centres[j]) ** 2).sum(axis=1))
    return centres


def _kmeans(x: np.ndarray, centres: np.ndarray, iterations: int) -> np.ndarray:
    centres = centres.copy()
    for _ in range(iterations):
        nearest = _nearest(x, centres)
        sums = np.zeros_like(centres)
        np.add.at(sums, nearest, x)
        counts = np.bincount(nearest, minlength=len(centres))
        used = counts > 0  # an empty cluster keeps its centre
        centres[used] = sums[used] / counts[used, None]
    return centres


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return ((centres**2).sum(axis=1)[None, :] - 2 * x @ centres.T).argmin(axis=1)


def _encode(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    width = centroids.shape[2]
    return np.stack(
        [_nearest(x[:, i * width : (i + 1) * width], c) for i, c in enumerate(centroids)], 1
    )


def _decode(codes: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    pieces = centroids[np.arange(len(centroids))[None, :], codes]
    return pieces.reshape(len(codes), DESCRIPTOR_SIZE)


def _coding_error(x: np.ndarray, rotation: np.ndarray, centroids: np.ndarray) -> float:
    coded = _decode(_encode(x @ rotation, centroids), centroids) @ rotation.T
    return float(((x - coded) ** 2).sum(axis=1).mean())


def main() -> None:
    default_out = Path(local_features.__file__).with_name(local_features.CODEBOOK_FILE)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    descriptors = training_descriptors(args.seed)
    logger.info("%d training descriptors", len(descriptors))
    book = train(descriptors, args.seed)
    book.save(args.out)
    logger.info("wrote %s in %.0f s", args.out, time.perf_counter() - started)


if __name__ == "__main__":
    main()
