"""When the focus view travels: once per view, when the camera has settled on it.

The focus view (a JPEG within ``device.view_bytes``) is what the worker verifies a
match with; the vector is what it answers every message from. Sending the view with
every published frame makes each message many times bigger and makes the worker
verify the same view again and again. So a view is owed once the camera has *settled*:
the last ``frames`` featurized frames all have a cosine of at least
``settle_cosine`` to the first of them (a moving or panning camera drifts further
than that within a few frames; a held one does not). Once it has gone out, no view
is owed again until a frame is unlike the one whose view was sent (cosine below
``same_view_cosine``, the smoother's own test for a new view): a keep-alive, or a
small drift of the same view, carries the vector alone.

The frames' own vectors are compared, not the smoothed ones: averaging would hide
the very motion this is meant to see.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class ViewSettle:
    """Per featurized frame, whether its focus view is owed; counts the new views seen."""

    def __init__(self, *, frames: int, settle_cosine: float, same_view_cosine: float) -> None:
        if frames < 1:
            raise ValueError("a view settles over at least one frame")
        if not 0 < settle_cosine <= 1 or not 0 < same_view_cosine <= 1:
            raise ValueError("settle_cosine and same_view_cosine are cosines in (0, 1]")
        self._window: deque[np.ndarray] = deque(maxlen=frames)
        self._settle_cosine = settle_cosine
        self._same_view_cosine = same_view_cosine
        self._sent: np.ndarray | None = None  # the frame whose view went out, while it lasts
        self.new_views = 0  # views left after their focus view went out

    @property
    def owed(self) -> bool:
        """True until the current view's focus view has gone out."""
        return self._sent is None

    def update(self, embedding: np.ndarray) -> bool:
        """Take the next frame's unit vector; True when this frame's view is owed now:
        the camera has settled and the view has not been sent yet."""
        embedding = np.asarray(embedding, dtype=np.float32)
        if self._sent is not None and float(self._sent @ embedding) < self._same_view_cosine:
            self._sent = None
            self.new_views += 1
        self._window.append(embedding)
        if self._sent is not None or len(self._window) < self._window.maxlen:
            return False
        first = self._window[0]
        return all(float(first @ later) >= self._settle_cosine for later in self._window)

    def sent(self) -> None:
        """The view of the last frame given to :meth:`update` went out: none is owed until
        a new view."""
        if self._window:
            self._sent = self._window[-1]
