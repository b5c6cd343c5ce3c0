"""Captured frames and the one-slot mailbox between capture and featurizer."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One captured image: HxWx3 uint8 BGR, numbered per device, stamped with wall time."""

    image_bgr: np.ndarray
    seq: int
    captured_at: float  # seconds since the Unix epoch, as the wire format carries it
    # Time spent in the source's read: decoding for files and streams; for a live
    # camera it also holds the wait for the sensor's next frame.
    decode_ms: float = 0.0

    def __post_init__(self) -> None:
        image = self.image_bgr
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
            raise ValueError(
                f"a frame is an HxWx3 uint8 BGR image, got shape {image.shape} {image.dtype}"
            )
        if self.seq < 0:
            raise ValueError(f"frame sequence numbers start at 0, got {self.seq}")
        if not math.isfinite(self.captured_at):
            raise ValueError("capture time must be finite")


class LatestFrameMailbox:
    """Holds at most one frame: a newer frame replaces one nobody took yet.

    A camera produces frames whether or not the model keeps up; queueing them
    would make every match later than the last. Replaced frames are counted in
    :attr:`dropped` so a slow model shows up as a number, not as latency.
    """

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._closed = False
        self._dropped = 0
        self._changed = threading.Condition()

    def put(self, frame: Frame) -> None:
        with self._changed:
            if self._closed:
                raise RuntimeError("put into a closed mailbox")
            if self._frame is not None:
                self._dropped += 1
            self._frame = frame
            self._changed.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The latest frame, waiting up to ``timeout``; None on timeout or once finished."""
        with self._changed:
            self._changed.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        """No more frames will come; the consumer still gets the one waiting."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def finished(self) -> bool:
        """Closed and emptied: the consumer can stop."""
        with self._changed:
            return self._closed and self._frame is None

    @property
    def dropped(self) -> int:
        with self._changed:
            return self._dropped
