"""A decompression bomb as a hostile device would send it for a view: shared by the
hostile-device tests and ``python -m benchmarks.faults``."""

from __future__ import annotations

import cv2
import numpy as np


def bomb_view(size: int = 2500) -> bytes:
    """A ``size``-byte JPEG that looks lossless (SOF3) and claims 8000x8000 pixels: a real
    small JPEG's frame header rewritten, padded with a comment segment."""
    _, data = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    view = bytearray(data.tobytes())
    sof = view.find(b"\xff\xc0")
    view[sof + 1] = 0xC3
    view[sof + 5 : sof + 9] = (8000).to_bytes(2, "big") * 2
    padding = size - len(view) - 4
    comment = b"\xff\xfe" + (2 + padding).to_bytes(2, "big") + bytes(padding)
    return bytes(view[:2] + comment + view[2:])
