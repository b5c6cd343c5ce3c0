"""Temporal aggregation: average recent vectors of the same view before publishing.

A single blurred or half-occluded frame should not flip the match, yet a new item
must show at once. So each frame's vector is averaged with the recent vectors that
look like it (cosine ≥ ``same_view_cosine``) and with none of the others: while the
view is stable the average of the last few frames goes out; when the view changes,
no earlier vector qualifies and the new frame goes out alone, immediately.

A frame unlike every recent one *and* much blurrier than them (motion blur, a
refocus) is not a new view but a glitch: it is held back, so the screen keeps the
last match (the thresholds: docs/decisions.md).
"""

from __future__ import annotations

import statistics
from collections import deque

import cv2
import numpy as np

SHARPNESS_SIZE = (320, 240)


def frame_sharpness(image_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of a small grey copy: high for sharp frames, ~0 for blur."""
    grey = cv2.cvtColor(cv2.resize(image_bgr, SHARPNESS_SIZE), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


class TemporalSmoother:
    def __init__(
        self, *, window: int, same_view_cosine: float, blur_hold_ratio: float = 0.25
    ) -> None:
        if window < 1:
            raise ValueError("the smoothing window holds at least the current frame")
        # The frames before the current one that may join its average.
        self._recent: deque[tuple[np.ndarray, float]] = deque(maxlen=window - 1)
        self._threshold = same_view_cosine
        self._blur_ratio = blur_hold_ratio
        self.view_changes = 0
        self.held_blurred = 0

    def update(self, embedding: np.ndarray, sharpness: float) -> np.ndarray | None:
        """The unit vector to publish for this frame, or None to hold a blurred glitch back."""
        embedding = np.asarray(embedding, dtype=np.float32)
        similar = [v for v, _ in self._recent if float(v @ embedding) >= self._threshold]
        if self._recent and not similar:
            typical = statistics.median(s for _, s in self._recent)
            if sharpness < self._blur_ratio * typical:
                self.held_blurred += 1
                return None
            self.view_changes += 1
        self._recent.append((embedding, sharpness))
        if not similar:
            return embedding
        mean = np.sum([embedding, *similar], axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)
