"""Local features for spatial verification: SIFT keypoints of a catalog photo or a query view.

A global vector cannot tell two poses of one object apart, nor find a box among other
things reliably; matching keypoints and fitting a homography can (the second stage of
instance retrieval, :mod:`edgelens.search.verify`). Catalog photos and queries go through
this one extractor. The device does not run it (SIFT costs several times the network on a
small CPU): it sends its focus box as a small grey JPEG, :func:`verification_jpeg`, and the
worker extracts the query's keypoints from that.

Parameters are the textbook ones, fixed before measuring: at most 1000 SIFT keypoints on
the image scaled to at most 640 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgelens.errors import ImageDecodeError
from edgelens.featurizer.focus import focus_crop

METHOD_ID = "sift1000-640-v1"  # stored with catalog keypoints; a change re-extracts them
MAX_KEYPOINTS = 1000
MAX_SIDE = 640
JPEG_QUALITY = 85
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
    gray, scale = _grey_at_most_max_side(image, max_side)
    # A detector per call (cheap to make): the web app may import two uploads at once.
    found, descriptors = cv2.SIFT_create(nfeatures=max_keypoints).detectAndCompute(gray, None)
    if descriptors is None:  # a flat image has no keypoints
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    xy = np.array([k.pt for k in found], np.float32).reshape(-1, 2) / scale
    return LocalFeatures(xy, descriptors.astype(np.float32))


def verification_jpeg(frame_bgr: np.ndarray) -> bytes:
    """What a device sends for verification: its focus box, grey, as a JPEG (~20 KB at VGA)."""
    gray, _ = _grey_at_most_max_side(focus_crop(frame_bgr))
    ok, encoded = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise ImageDecodeError("JPEG encoding of the verification view failed")
    return encoded.tobytes()


def _grey_at_most_max_side(image: np.ndarray, max_side: int = MAX_SIDE) -> tuple[np.ndarray, float]:
    """The image in grey, shrunk so its longer side is at most ``max_side``; and the scale."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    scale = min(1.0, max_side / max(gray.shape[:2]))
    if scale < 1:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return gray, scale


def decode_verification_jpeg(data: bytes) -> np.ndarray:
    """The grey view back from a message; raises ImageDecodeError for anything else."""
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    except cv2.error:  # an empty buffer
        image = None
    if image is None or min(image.shape) < 16:
        raise ImageDecodeError(f"verification view of {len(data)} bytes is not a usable JPEG")
    return image
