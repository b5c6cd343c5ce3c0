"""Local features for spatial verification: SIFT keypoints of a catalog photo or a query view.

A global vector cannot tell two poses of one object apart, nor find a box among other
things reliably; matching keypoints and fitting a homography can (the second stage of
instance retrieval, :mod:`edgelens.search.verify`). Catalog photos and queries go through
this one extractor. The device does not run it (SIFT costs several times the network on a
small CPU): it sends its focus box as a small JPEG
(:func:`edgelens.featurizer.focus.focus_view_jpeg`), and the worker extracts the query's
keypoints from that.

Parameters are the textbook ones, fixed before measuring: at most 1000 SIFT keypoints on
the image scaled to at most 640 px. Descriptors are stored as SIFT computes them and matched
as RootSIFT (:attr:`LocalFeatures.matching_descriptors_n128`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from edgelens.featurizer.focus import VIEW_MAX_SIDE, at_most_side

METHOD_ID = "sift1000-640-v1"  # stored with catalog keypoints; a change re-extracts them
MAX_KEYPOINTS = 1000
MAX_SIDE = VIEW_MAX_SIDE  # a query view is extracted at the size it travels
DESCRIPTOR_SIZE = 128


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints in the image's own pixels (``xy_n2``) and their SIFT descriptors."""

    xy_n2: np.ndarray  # (n, 2) float32
    descriptors_n128: np.ndarray  # (n, 128) float32

    def __post_init__(self) -> None:
        n = self.xy_n2.shape[0]
        if self.xy_n2.shape != (n, 2) or self.descriptors_n128.shape != (n, DESCRIPTOR_SIZE):
            raise ValueError(
                f"keypoints {self.xy_n2.shape} and descriptors {self.descriptors_n128.shape} "
                "do not pair up"
            )

    def __len__(self) -> int:
        return int(self.xy_n2.shape[0])

    @cached_property
    def matching_descriptors_n128(self) -> np.ndarray:
        """RootSIFT (Arandjelovic & Zisserman, "Three things everyone should know to improve
        object retrieval", 2012): each descriptor L1-normalised, then square-rooted, so that
        Euclidean distance between them compares SIFT histograms by the Hellinger kernel,
        which a few large bins sway less. Computed once per object from the stored SIFT (no
        re-extraction, nothing more stored). Measured in scripts/bench_verify.py against plain
        SIFT on the same keypoints: more true items verified in clutter, fewer stray inliers
        on wrong ones."""
        total = self.descriptors_n128.sum(axis=1, keepdims=True)
        return np.sqrt(self.descriptors_n128 / np.maximum(total, 1e-7)).astype(np.float32)

    def to_blobs(self) -> tuple[bytes, bytes]:
        """Compact storage: float32 positions, uint8 descriptors (SIFT's own range)."""
        descriptors = np.clip(np.rint(self.descriptors_n128), 0, 255).astype(np.uint8)
        return self.xy_n2.astype("<f4").tobytes(), descriptors.tobytes()

    @classmethod
    def from_blobs(cls, xy: bytes, descriptors: bytes) -> LocalFeatures:
        xy_n2 = np.frombuffer(xy, "<f4").reshape(-1, 2)
        raw = np.frombuffer(descriptors, np.uint8).reshape(-1, DESCRIPTOR_SIZE)
        return cls(xy_n2.astype(np.float32), raw.astype(np.float32))


def extract_local_features(
    image: np.ndarray, *, max_keypoints: int = MAX_KEYPOINTS, max_side: int = MAX_SIDE
) -> LocalFeatures:
    """Keypoints of a BGR or grey image, scaled down to at most ``max_side`` for extraction.
    The product uses the defaults (their method id is stored with catalog keypoints); the
    arguments are for measuring what other budgets cost and give (scripts/bench_verify.py)."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    gray, scale = at_most_side(gray, max_side)
    # A detector per call (cheap to make): the web app may import two uploads at once.
    found, descriptors = cv2.SIFT_create(nfeatures=max_keypoints).detectAndCompute(gray, None)
    if descriptors is None:  # a flat image has no keypoints
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    xy = np.array([k.pt for k in found], np.float32).reshape(-1, 2) / scale
    return LocalFeatures(xy, descriptors.astype(np.float32))
