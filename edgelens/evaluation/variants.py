"""Product variants: near-duplicate catalog items, as one product line has them.

A catalog often holds one product in several colours, or one pack in several flavours that
differ only in a label panel; a shopper's view must find the variant in hand, not a
sibling. The real-view set's near-duplicates are mostly one chessboard in thirteen poses.
These are the variants a shop has, generated from the catalog photos:

- a label variant: a panel of 20-30% of the photo, placed at random, is covered by a label
  of random words on a plain colour, as another flavour's label would be (made up, not
  taken from another photo: a piece of another catalog item would make the variant match
  that item too, which no shop's label does);
- a colour twin: the hue turned by a third of the colour wheel, brightness and saturation
  kept (only for photos with colour: a grey photo's twin would be the same picture).

Each original and each variant is a catalog item of its own, queried by seeded camera-like
views of it (:func:`edgelens.evaluation.runner.synthetic_queries`).
"""

from __future__ import annotations

import hashlib
import math

import cv2
import numpy as np

from edgelens.catalog.models import CatalogItem
from edgelens.evaluation.runner import CatalogPhoto, Query, cover_images, synthetic_queries

LABEL_AREA = (0.20, 0.30)
HUE_TURN = 60  # OpenCV's hue runs over 0-180: a third of the wheel
MIN_SATURATION = 40.0  # mean saturation (0-255) for a photo to count as a colour photo
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX)


def variant_images(images: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """The originals and their variants by item id: ``<id>``, ``<id>-label`` and, for
    colour photos, ``<id>-hue``. Deterministic for one seed."""
    rng = np.random.default_rng(seed)
    variants: dict[str, np.ndarray] = {}
    for item_id in sorted(images):
        image = images[item_id]
        variants[item_id] = image
        variants[f"{item_id}-label"] = label_variant(image, rng)
        if is_colour(image):
            variants[f"{item_id}-hue"] = colour_twin(image)
    return variants


def label_variant(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image with a random panel of :data:`LABEL_AREA` of it covered by a label: a plain
    colour with a few random words on it, in a contrasting colour."""
    height, width = image.shape[:2]
    side = math.sqrt(rng.uniform(*LABEL_AREA))
    panel_w, panel_h = max(1, round(width * side)), max(1, round(height * side))
    x = int(rng.integers(0, width - panel_w + 1))
    y = int(rng.integers(0, height - panel_h + 1))
    colour = rng.integers(0, 256, 3)
    ink = tuple(int(c) for c in np.where(colour > 127, 0, 255))
    panel = np.empty((panel_h, panel_w, 3), np.uint8)
    panel[:] = colour
    lines = int(rng.integers(2, 5))
    for line in range(lines):
        word = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(4, 9))))
        font = int(rng.choice(_FONTS))
        (text_w, text_h), _ = cv2.getTextSize(word, font, 1.0, 2)
        scale = min(0.9 * panel_w / text_w, 0.7 * panel_h / lines / text_h)
        baseline = round((line + 0.8) * panel_h / lines)
        cv2.putText(panel, word, (round(0.05 * panel_w), baseline), font, scale, ink, 2)
    variant = image.copy()
    variant[y : y + panel_h, x : x + panel_w] = panel
    return variant


def colour_twin(image: np.ndarray) -> np.ndarray:
    """The image with its hue turned by :data:`HUE_TURN`."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + HUE_TURN) % 180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def is_colour(image: np.ndarray) -> bool:
    return float(cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1].mean()) >= MIN_SATURATION


def variant_catalog(variants: dict[str, np.ndarray]) -> list[CatalogPhoto]:
    """The variants as catalog photos, each hashed from its pixels (the vector cache's key)."""
    photos = []
    for item_id, image in sorted(variants.items()):
        sha256 = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
        item = CatalogItem(item_id, item_id, None, "EUR", True, sha256, f"{item_id}.png")
        photos.append(CatalogPhoto(item, sha256, image))
    return photos


def variant_suite(
    photos: list[CatalogPhoto], views_per_item: int, seed: int
) -> tuple[list[CatalogPhoto], dict[str, list[Query]]]:
    """The variant catalog made from ``photos`` and its one query set, "variants"."""
    variants = variant_images(cover_images(photos), seed)
    queries = synthetic_queries(variants, views_per_item, seed + 3)
    return variant_catalog(variants), {"variants": queries}
