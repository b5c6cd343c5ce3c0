"""Seeded camera-like views of a catalog photo.

A shopper's camera never sees the catalog photo itself: it sees the item off
centre, tilted, in other light, blurred by motion, through a noisy sensor and a
JPEG encoder. Each transform here models one of those effects; the strengths
are moderate on purpose (the item must stay recognisable to a person).
"""

from __future__ import annotations

import cv2
import numpy as np

FRAME_SIZE = (640, 480)  # width, height of a typical webcam frame


def camera_view(image_bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random view of ``image_bgr`` as a 640x480 BGR frame."""
    view = _crop(image_bgr, rng)
    view = _perspective_and_rotation(view, rng)
    return camera_finish(view, rng)


def camera_finish(frame_bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What the camera itself adds to any scene: light, blur, sensor noise, JPEG."""
    frame = _light(frame_bgr, rng)
    frame = _blur(frame, rng)
    frame = _noise(frame, rng)
    return _jpeg(frame, rng)


def pack_shot(image_bgr: np.ndarray, side: int = 200, margin: int = 20) -> np.ndarray:
    """The photo as shops often have it for their catalog: a small pack shot, its longer
    side ``side`` px, centred on white with ``margin`` px around."""
    height, width = image_bgr.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
    canvas = np.full((small.shape[0] + 2 * margin, small.shape[1] + 2 * margin, 3), 255, np.uint8)
    canvas[margin : margin + small.shape[0], margin : margin + small.shape[1]] = small
    return canvas


def camera_views(image_bgr: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [camera_view(image_bgr, rng) for _ in range(count)]


def _crop(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    keep = rng.uniform(0.7, 1.0)  # fraction of each side kept
    crop_w, crop_h = int(width * keep), int(height * keep)
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    return image[top : top + crop_h, left : left + crop_w]


def _perspective_and_rotation(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Place the item in a webcam frame, seen slightly from the side and rotated."""
    out_w, out_h = FRAME_SIZE
    height, width = image.shape[:2]
    scale = min(out_w / width, out_h / height) * rng.uniform(0.8, 1.0)
    center = np.array([out_w / 2, out_h / 2]) + rng.uniform(-0.08, 0.08, 2) * [out_w, out_h]
    half = np.array([width, height]) * scale / 2
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * half
    corners += rng.uniform(-0.12, 0.12, (4, 2)) * half * 2  # viewpoint: each corner moves
    angle = np.deg2rad(rng.uniform(-15, 15))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = (corners @ rotation.T + center).astype(np.float32)
    src = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    background = tuple(int(v) for v in rng.integers(40, 220, 3))
    return cv2.warpPerspective(
        image,
        matrix,
        FRAME_SIZE,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=background,
    )


def _light(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    contrast = rng.uniform(0.7, 1.3)
    brightness = rng.uniform(-35, 35)
    tint = rng.uniform(0.88, 1.12, 3)  # white balance of another light source
    out = image.astype(np.float32) * contrast * tint + brightness
    gamma = rng.uniform(0.8, 1.25)
    out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** gamma
    return out.astype(np.uint8)


def _blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        sigma = rng.uniform(0.3, 1.5)
        return cv2.GaussianBlur(image, (0, 0), sigma)
    length = int(rng.integers(3, 9))  # motion blur along a random direction
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    return cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))


def _noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = rng.uniform(0, 8)
    noisy = image.astype(np.float32) + rng.normal(0, sigma, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    quality = int(rng.integers(40, 91))
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)
