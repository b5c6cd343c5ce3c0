"""Object focus: the middle of the frame, where a shopper points the camera, as a second view.

A frame in which the item is small carries the shelf around it into the descriptor. The
device therefore also featurizes the focus box, a centred crop of :data:`FOCUS_AREA` of
the frame, with the same model and preprocessing, and the worker scores each item by the
better of the two vectors (``edgelens.search.base.search_views``). The crop is featurized only
for frames that are published, so it costs the device one more forward pass per message,
not per frame.

Measured on item-in-clutter views of the sample photos (items at 15-40% of the frame,
placed anywhere, so the box often cuts them), FP32, area fixed beforehand at 0.6
(scripts/bench_quality.py): clutter top-1 0.790 → 0.815 and mAP 0.866 → 0.886, synthetic
views 0.993 → 0.998, the real stereo view unchanged; on two further query seeds 0.745 →
0.810 and 0.815 → 0.830. Boxes from the network's own activation map and from
spectral-residual saliency were measured too and did no better than the frame alone, or
worse: they find the busiest thing in the frame, not the item.
"""

from __future__ import annotations

import math

import numpy as np

FOCUS_AREA = 0.6


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
