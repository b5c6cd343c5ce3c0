"""The demo catalog: real photographs that scikit-image ships (no download needed).

Each photo stands for one catalog item. Grey photos are kept (converted to three
channels) because real catalogs hold black-and-white product shots too. The
stereo motorcycle pair gives one genuinely different real view of the same scene.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class SamplePhoto:
    item_id: str
    loader: str
    name: str
    price: float
    available: bool = True


SAMPLE_PHOTOS: tuple[SamplePhoto, ...] = (
    SamplePhoto("astronaut", "astronaut", "Astronaut portrait print", 24.0),
    SamplePhoto("chelsea", "chelsea", "Chelsea the cat poster", 12.5),
    SamplePhoto("coffee", "coffee", "Coffee cup", 8.9),
    SamplePhoto("rocket", "rocket", "Rocket launch photo", 19.0),
    SamplePhoto("motorcycle", "stereo_motorcycle", "Motorcycle model", 249.0),
    SamplePhoto("hubble", "hubble_deep_field", "Hubble deep field print", 35.0, False),
    SamplePhoto("ihc", "immunohistochemistry", "Stained tissue slide", 55.0),
    SamplePhoto("retina", "retina", "Retina scan print", 42.0),
    SamplePhoto("logo", "logo", "scikit-image sticker", 2.5),
    SamplePhoto("colorwheel", "colorwheel", "Colour wheel chart", 6.0),
    SamplePhoto("camera", "camera", "Cameraman print", 15.0),
    SamplePhoto("brick", "brick", "Brick wall tile", 3.2, False),
    SamplePhoto("grass", "grass", "Grass doormat", 22.0),
    SamplePhoto("gravel", "gravel", "Gravel bag", 9.5),
    SamplePhoto("moon", "moon", "Moon surface print", 18.0),
    SamplePhoto("coins", "coins", "Coin collection", 120.0),
    SamplePhoto("clock", "clock", "Wall clock", 29.0),
    SamplePhoto("page", "page", "Book page", 4.0),
    SamplePhoto("text", "text", "Text sign", 7.0),
    SamplePhoto("cell", "cell", "Cell micrograph", 31.0),
)


def load_photo(loader: str) -> np.ndarray:
    """Load one scikit-image photo as an HxWx3 uint8 BGR array."""
    from skimage import data

    image = getattr(data, loader)()
    if loader == "stereo_motorcycle":
        image = image[0]  # left view; the right view is a real second view for evaluation
    return to_bgr(image)


def load_motorcycle_right_view() -> np.ndarray:
    from skimage import data

    return to_bgr(data.stereo_motorcycle()[1])


def to_bgr(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def write_sample_catalog(directory: Path) -> Path:
    """Write the photos as ``<item_id>.png`` plus a ``catalog.json`` manifest; return the latter."""
    directory.mkdir(parents=True, exist_ok=True)
    records = []
    for photo in SAMPLE_PHOTOS:
        path = directory / f"{photo.item_id}.png"
        if not path.exists():
            cv2.imwrite(str(path), load_photo(photo.loader))
        records.append(
            {
                "id": photo.item_id,
                "name": photo.name,
                "price": photo.price,
                "currency": "EUR",
                "available": photo.available,
                "image": path.name,
            }
        )
    manifest = directory / "catalog.json"
    manifest.write_text(json.dumps(records, indent=2) + "\n")
    return manifest
