"""Catalog augmentation: each catalog photo also stands for the views a camera will see.

A catalog photo shows the item filling the frame; a shopper's camera shows it small,
among other things, tilted, in other light. Each catalog image is therefore stored as
several vectors (the photo plus generated views) and an item scores its best one. The two
zoom-outs (the item small on a busy canvas) do most of the good, so they come first: a
catalog that can afford fewer vectors per item keeps the useful ones (docs/decisions.md).
Views are seeded by the image's sha256: the same photo always gives the same vectors,
which is what lets them be cached by (sha256, model id, recipe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.views import FRAME_SIZE

MAX_VIEWS = 8
RECIPE_VERSION = 2


@dataclass(frozen=True)
class CatalogRecipe:
    """How many vectors each catalog image gets (1 = the photo alone)."""

    views: int = MAX_VIEWS

    def __post_init__(self) -> None:
        if not 1 <= self.views <= MAX_VIEWS:
            raise ValueError(f"catalog views must be 1..{MAX_VIEWS}, got {self.views}")

    @property
    def recipe_id(self) -> str:
        return f"views{self.views}-v{RECIPE_VERSION}"

    def images(self, image_bgr: np.ndarray, sha256: str) -> list[np.ndarray]:
        """The photo followed by its generated views, deterministic for one image."""
        rng = np.random.default_rng(int(sha256[:16], 16))
        makers = (
            lambda: _zoom_out(image_bgr, rng, area=(0.20, 0.30)),
            lambda: _zoom_out(image_bgr, rng, area=(0.08, 0.12)),
            lambda: _crop(image_bgr, rng),
            lambda: _crop(image_bgr, rng),
            lambda: _rotate(image_bgr, rng),
            lambda: _light(image_bgr, gain=rng.uniform(0.70, 0.85), gamma=rng.uniform(1.2, 1.4)),
            lambda: _light(image_bgr, gain=rng.uniform(1.05, 1.2), gamma=rng.uniform(0.7, 0.85)),
        )
        return [image_bgr, *(make() for make in makers[: self.views - 1])]


DEFAULT_RECIPE = CatalogRecipe()


def _zoom_out(image: np.ndarray, rng: np.random.Generator, area: tuple[float, float]) -> np.ndarray:
    """The item small in a busy frame, slightly off centre and seen a little from the side."""
    width, height = FRAME_SIZE
    canvas = _busy_canvas(rng)
    h, w = image.shape[:2]
    scale = np.sqrt(rng.uniform(*area) * width * height / (w * h))
    half = np.array([w, h]) * scale / 2
    center = np.array([width, height]) / 2 + rng.uniform(-0.1, 0.1, 2) * [width, height]
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * half
    corners += rng.uniform(-0.06, 0.06, (4, 2)) * half * 2
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, (corners + center).astype(np.float32))
    return cv2.warpPerspective(
        image, matrix, FRAME_SIZE, dst=canvas, borderMode=cv2.BORDER_TRANSPARENT
    )


def _busy_canvas(rng: np.random.Generator) -> np.ndarray:
    """Generic clutter: random coloured boxes and ellipses, slightly blurred.

    Made of shapes rather than photos so no real object's features leak into an item's
    vectors; busy rather than a plain gradient, because a camera sees the item among other
    things (docs/decisions.md).
    """
    width, height = FRAME_SIZE
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = rng.integers(40, 220, 3)
    for _ in range(int(rng.integers(15, 40))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        a, b = int(rng.integers(10, 120)), int(rng.integers(10, 120))
        if rng.random() < 0.5:
            cv2.rectangle(canvas, (x, y), (x + a, y + b), colour, -1)
        else:
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(canvas, (x, y), (a // 2, b // 2), angle, 0, 360, colour, -1)
    return cv2.GaussianBlur(canvas, (0, 0), float(rng.uniform(0.5, 2.0)))


def _crop(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    keep_w, keep_h = int(w * rng.uniform(0.6, 0.85)), int(h * rng.uniform(0.6, 0.85))
    x, y = int(rng.integers(0, w - keep_w + 1)), int(rng.integers(0, h - keep_h + 1))
    return image[y : y + keep_h, x : x + keep_w].copy()


def _rotate(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    angle = rng.uniform(8, 15) * rng.choice([-1, 1])
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


def _light(image: np.ndarray, *, gain: float, gamma: float) -> np.ndarray:
    lut = np.clip(255.0 * ((np.arange(256) / 255.0) * gain) ** gamma, 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


def catalog_vectors(
    *,
    featurizer: Featurizer,
    recipe: CatalogRecipe,
    images: Sequence[tuple[str, np.ndarray]],
) -> list[np.ndarray]:
    """One (views, dim) matrix per (sha256, image), all views featurized in one batched run."""
    flat: list[np.ndarray] = []
    counts: list[int] = []
    for sha256, image in images:
        views = recipe.images(image, sha256)
        flat.extend(views)
        counts.append(len(views))
    if not flat:
        return []
    return np.split(featurizer.embed(flat), np.cumsum(counts)[:-1])
