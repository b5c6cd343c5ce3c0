"""Object focus: the middle of the frame, where a shopper points the camera, as a second view.

A frame in which the item is small carries the shelf around it into the descriptor. A
device therefore also sends its focus box, a centred crop of :data:`FOCUS_AREA` of the frame
(fixed before measuring), as a small colour JPEG once the view has settled
(:func:`focus_view_jpeg`). The worker featurizes that view, and the view's own centred box
(:func:`focus_views`: the next step of the same zoom, for an item smaller still), with the
catalog's own model and preprocessing, and scores each item by its best of the frame and the
boxes (``edgelens.search.base.search_views``); it also verifies its best candidates against
the view's keypoints (``edgelens.search.verify``). The device pays one JPEG encoding, not a
second forward pass: on a small CPU that pass would double the cost of a published frame,
while the worker's keypoint verification costs many passes anyway. A device that sends no
view may featurize the box itself (``device.focus``). The box is fixed and centred because
boxes from the network's activation map or from saliency find the busiest thing in the
frame, not the item (docs/decisions.md).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edgelens.errors import ImageDecodeError
from edgelens.featurizer.jpeg import jpeg_header

FOCUS_AREA = 0.6
# The view's longer side at most, and its JPEG qualities, tried in turn: chosen on the quality
# sets against the byte cost (docs/decisions.md); finer views cost bytes, not answers.
VIEW_MAX_SIDE = 400
VIEW_JPEG_QUALITIES = (45, 35)
MIN_VIEW_SIDE = 16  # the smallest view the worker decodes
MIN_CODED_SIDE = 64  # the smallest a device shrinks a view to fit its budget: less is no view


def focus_xyxy(width: int, height: int, area: float = FOCUS_AREA) -> tuple[int, int, int, int]:
    """The centred box covering ``area`` of a ``width`` x ``height`` frame, same aspect."""
    if not 0 < area <= 1:
        raise ValueError(f"focus area must be in (0, 1], got {area}")
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    side = math.sqrt(area)
    box_w, box_h = max(1, round(width * side)), max(1, round(height * side))
    x0, y0 = (width - box_w) // 2, (height - box_h) // 2
    return x0, y0, x0 + box_w, y0 + box_h


def focus_crop(image_bgr: np.ndarray, area: float = FOCUS_AREA) -> np.ndarray:
    """The focus box of an HxWx3 frame (a view, not a copy)."""
    x0, y0, x1, y1 = focus_xyxy(image_bgr.shape[1], image_bgr.shape[0], area)
    return image_bgr[y0:y1, x0:x1]


def focus_views(view_bgr: np.ndarray) -> list[np.ndarray]:
    """What the worker featurizes of a focus view: the view, and the view's own focus box
    (:data:`FOCUS_AREA` of the view, its square of the frame), for an item smaller still.
    The second scale of the same zoom, not a tuned one; see the module docstring."""
    return [view_bgr, focus_crop(view_bgr)]


def at_most_side(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image shrunk so its longer side is at most ``max_side`` (never enlarged); and
    the scale applied."""
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image, scale


def focus_view_jpeg(frame_bgr: np.ndarray, max_bytes: int) -> bytes:
    """What a published frame carries for the worker: its focus box in colour, at most
    :data:`VIEW_MAX_SIDE` px, as a JPEG of at most ``max_bytes``. A busier view is coded at
    a lower quality, then smaller, until it fits; ImageDecodeError if it cannot fit at
    :data:`MIN_CODED_SIDE` px."""
    view, _ = at_most_side(focus_crop(frame_bgr), VIEW_MAX_SIDE)
    while True:
        for quality in VIEW_JPEG_QUALITIES:
            # optimised Huffman tables: the same pixels in about 5% fewer bytes
            params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1]
            ok, encoded = cv2.imencode(".jpg", view, params)
            if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
                raise ImageDecodeError("JPEG encoding of the focus view failed")
            if len(encoded) <= max_bytes:
                return encoded.tobytes()
        # Bytes grow about as the pixels: shrink by the square root of the excess, at least
        # a fifth, so a view that barely missed is not coded many times.
        side = int(max(view.shape[:2]) * min(0.8, math.sqrt(max_bytes / len(encoded))))
        if side < MIN_CODED_SIDE:
            raise ImageDecodeError(
                f"the focus view does not fit in {max_bytes} bytes even at "
                f"{MIN_CODED_SIDE} px and JPEG quality {VIEW_JPEG_QUALITIES[-1]}"
            )
        view, _ = at_most_side(view, side)


def decode_focus_view(data: bytes) -> np.ndarray:
    """The view back from a message: HxWx3 BGR, or HxW grey from devices that sent the grey
    view of wire version 3's first release (verifiable, but not featurized); raises
    ImageDecodeError for anything that is not a usable JPEG, checked from its header
    before it is decoded (:func:`edgelens.featurizer.jpeg.jpeg_header`)."""
    jpeg_header(data)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # an empty buffer
        image = None
    if (
        image is None
        or image.dtype != np.uint8
        or image.ndim not in (2, 3)
        or (image.ndim == 3 and image.shape[2] != 3)
        or min(image.shape[:2]) < MIN_VIEW_SIDE
    ):
        raise ImageDecodeError(f"focus view of {len(data)} bytes is not a usable JPEG")
    return image
