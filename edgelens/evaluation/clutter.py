""" "Item in clutter" views: a catalog item small in a busy frame, as a shopper's camera sees it.

Each view pastes the item, perspective-warped and slightly rotated, at 15-40% of the
frame's area onto a background assembled from *other* photos (so the clutter is made
of real, recognisable things), adds a soft drop shadow, then the camera effects of
:mod:`edgelens.samples.views` (light, blur, noise, JPEG). Seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgelens.samples.views import FRAME_SIZE, camera_finish

AREA_RANGE = (0.15, 0.40)


@dataclass(frozen=True)
class ClutterFrame:
    """A clutter view and which background photos (indexes into the list given) show in it:
    when those are catalog photos, the frame holds other catalog items too."""

    image_bgr: np.ndarray
    background_indexes: frozenset[int]


def clutter_view(
    item_bgr: np.ndarray,
    backgrounds_bgr: Sequence[np.ndarray],
    rng: np.random.Generator,
    *,
    area_range: tuple[float, float] = AREA_RANGE,
) -> ClutterFrame:
    """One 640x480 frame with the item somewhere among other photos."""
    canvas, used = _busy_background(backgrounds_bgr, rng)
    width, height = FRAME_SIZE
    area = rng.uniform(*area_range) * width * height
    h, w = item_bgr.shape[:2]
    scale = np.sqrt(area / (w * h))
    item_w, item_h = w * scale, h * scale
    if item_w > width * 0.95 or item_h > height * 0.95:  # very wide items: fit the frame
        shrink = min(width * 0.95 / item_w, height * 0.95 / item_h)
        item_w, item_h = item_w * shrink, item_h * shrink
    cx = rng.uniform(item_w / 2, width - item_w / 2)
    cy = rng.uniform(item_h / 2, height - item_h / 2)
    half = np.array([item_w, item_h]) / 2
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * half
    corners += rng.uniform(-0.12, 0.12, (4, 2)) * half * 2
    angle = np.deg2rad(rng.uniform(-20, 20))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = (corners @ rotation.T + [cx, cy]).astype(np.float32)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(item_bgr, matrix, FRAME_SIZE, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, FRAME_SIZE)
    canvas = _shadow(canvas, mask, rng)
    alpha = (cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32) / 255.0)[..., None]
    composed = (warped * alpha + canvas * (1 - alpha)).astype(np.uint8)
    return ClutterFrame(camera_finish(composed, rng), frozenset(used))


def _busy_background(
    photos: Sequence[np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, list[int]]:
    """A 2x2 collage of random crops of other photos, each scaled to a quarter of the frame;
    and the indexes of the photos it used."""
    width, height = FRAME_SIZE
    canvas = np.zeros((height, width, 3), np.uint8)
    used = []
    for row in range(2):
        for col in range(2):
            used.append(int(rng.integers(len(photos))))
            photo = photos[used[-1]]
            ph, pw = photo.shape[:2]
            keep = rng.uniform(0.4, 0.9)
            cw, ch = max(8, int(pw * keep)), max(8, int(ph * keep))
            x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
            tile = cv2.resize(photo[y : y + ch, x : x + cw], (width // 2, height // 2))
            canvas[
                row * height // 2 : (row + 1) * height // 2,
                col * width // 2 : (col + 1) * width // 2,
            ] = tile
    return canvas, used


def _shadow(canvas: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    offset = rng.integers(4, 16, 2)
    moved = np.roll(mask, shift=(int(offset[1]), int(offset[0])), axis=(0, 1))
    soft = cv2.GaussianBlur(moved, (0, 0), 6).astype(np.float32) / 255.0
    darkness = rng.uniform(0.25, 0.5)
    return (canvas * (1 - darkness * soft[..., None])).astype(np.uint8)
