"""The one preprocessing path for camera frames and catalog images alike.

Every image, whether a BGR frame from OpenCV capture or a catalog file, goes
through :func:`decode_image` (files only) and :func:`to_model_input`. Keeping a
single implementation is what makes a frame of an item land next to that item's
catalog vector: any difference in colour order, resize or normalisation shows
up directly as lost recall.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgelens import MAX_IMAGE_PIXELS
from edgelens.errors import ImageDecodeError

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

# File names taken as images when a folder is read (catalog import, folder camera source).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class PreprocessSpec:
    """What the model expects; stored in the manifest and hashed into the model id."""

    input_size: int = 224
    resize_shorter: int = 256
    mean_rgb: tuple[float, float, float] = IMAGENET_MEAN_RGB
    std_rgb: tuple[float, float, float] = IMAGENET_STD_RGB
    color_order: str = "RGB"
    layout: str = "NCHW"

    def to_dict(self) -> dict[str, object]:
        return {
            "input_size": self.input_size,
            "resize_shorter": self.resize_shorter,
            "mean_rgb": list(self.mean_rgb),
            "std_rgb": list(self.std_rgb),
            "color_order": self.color_order,
            "layout": self.layout,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PreprocessSpec:
        return cls(
            input_size=int(data["input_size"]),  # type: ignore[arg-type]
            resize_shorter=int(data["resize_shorter"]),  # type: ignore[arg-type]
            mean_rgb=tuple(data["mean_rgb"]),  # type: ignore[arg-type]
            std_rgb=tuple(data["std_rgb"]),  # type: ignore[arg-type]
            color_order=str(data["color_order"]),
            layout=str(data["layout"]),
        )


def decode_image(source: bytes | Path) -> np.ndarray:
    """Decode an image file or buffer into an HxWx3 uint8 BGR array (OpenCV's frame format).

    EXIF orientation is applied, grey and alpha images become 3-channel, and
    anything OpenCV cannot read raises :class:`ImageDecodeError` naming the source.
    """
    name = str(source) if isinstance(source, Path) else f"<{len(source)} bytes>"
    try:
        data = source.read_bytes() if isinstance(source, Path) else source
    except OSError as exc:
        raise ImageDecodeError(f"cannot read image {name}: {exc.strerror or exc}") from exc
    if not data:
        raise ImageDecodeError(f"empty image: {name}")
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ImageDecodeError(f"cannot decode image {name}: {exc}") from exc
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ImageDecodeError(
            f"not an image it can read (a JPEG, PNG, WebP, BMP or TIFF file): {name}"
        )
    if image.shape[0] * image.shape[1] > MAX_IMAGE_PIXELS:
        raise ImageDecodeError(f"image too large ({image.shape[1]}x{image.shape[0]}): {name}")
    return image


def resize_and_crop(image_bgr: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Resize the shorter side to ``spec.resize_shorter`` and take the centre square."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ImageDecodeError(
            f"expected an HxWx3 uint8 BGR image, got shape {image_bgr.shape} {image_bgr.dtype}"
        )
    height, width = image_bgr.shape[:2]
    scale = spec.resize_shorter / min(height, width)
    new_w, new_h = (
        max(spec.input_size, round(width * scale)),
        max(spec.input_size, round(height * scale)),
    )
    # INTER_AREA anti-aliases when shrinking; camera frames are almost always shrunk.
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=interp)
    top, left = (new_h - spec.input_size) // 2, (new_w - spec.input_size) // 2
    return resized[top : top + spec.input_size, left : left + spec.input_size]


def to_model_input(images_bgr: Sequence[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """Turn BGR uint8 images into the model's float32 NCHW batch, normalised per channel."""
    if not images_bgr:
        raise ValueError("no images to preprocess")
    crops = np.stack([resize_and_crop(image, spec) for image in images_bgr])
    if spec.color_order == "RGB":
        crops = crops[..., ::-1]
    mean = np.asarray(spec.mean_rgb, dtype=np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(spec.std_rgb, dtype=np.float32) * 255.0)
    batch = (crops.astype(np.float32) - mean) * inv_std
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
