"""A seeded "camera" video for the demo: someone holds catalog items up, one after another.

Each item gets a camera-like view (the same transforms as the evaluation views)
and is then held for a few seconds with a slight hand shake and flicker, so the
stream looks like a real camera rather than a slide show.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edgelens.errors import EdgelensError
from edgelens.samples.views import FRAME_SIZE, camera_view


def render_camera_video(
    path: Path,
    images_bgr: Sequence[np.ndarray],
    *,
    fps: float = 15.0,
    seconds_per_item: float = 3.0,
    seed: int = 0,
) -> Path:
    """Write an MJPG AVI (decodable by every OpenCV build) and return its path."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, FRAME_SIZE)
    if not writer.isOpened():
        raise EdgelensError(f"cannot write video {path}")
    frames_per_item = max(1, round(fps * seconds_per_item))
    try:
        for image in images_bgr:
            held = camera_view(image, rng)
            for _ in range(frames_per_item):
                writer.write(hand_shake(held, rng))
    finally:
        writer.release()
    return path


def hand_shake(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The next frame of a hand-held camera: a slight turn, shift and exposure change."""
    height, width = frame.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.normal(0, 0.6), 1.0)
    matrix[:, 2] += rng.normal(0, 3, 2)
    moved = cv2.warpAffine(frame, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    return cv2.convertScaleAbs(moved, alpha=1.0, beta=float(rng.normal(0, 4)))
