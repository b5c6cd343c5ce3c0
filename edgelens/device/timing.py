"""Per-stage timings and the frame rate of the device loop, as cheap running figures.

The loop's time splits into decode (the capture thread reading the source),
preprocess, featurize (the model alone), publish (smoothing, gating, encoding
and handing the message to the broker client) and focus (the focus box's forward
pass, for published frames only). Knowing which one dominates is what
tells a Jetson owner whether to change the model, the precision or the camera.
"""

from __future__ import annotations

import threading
import time
from collections import deque

STAGES = ("decode", "preprocess", "featurize", "publish", "focus")


class StageTimes:
    """Running mean and last value of each stage, in milliseconds; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total_ms = dict.fromkeys(STAGES, 0.0)
        self._count = dict.fromkeys(STAGES, 0)
        self._last_ms = dict.fromkeys(STAGES, 0.0)

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self._total_ms[stage] += ms
            self._count[stage] += 1
            self._last_ms[stage] = ms

    def mean_ms(self, stage: str) -> float:
        with self._lock:
            count = self._count[stage]
            return self._total_ms[stage] / count if count else 0.0

    def last_ms(self, stage: str) -> float:
        with self._lock:
            return self._last_ms[stage]


class RateMeter:
    """Events per second over the last ``window_s`` seconds (monotonic clock)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self._forget_before(now - self._window_s)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._forget_before(now - self._window_s)
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], 1e-9)
            return (len(self._times) - 1) / span

    def _forget_before(self, cutoff: float) -> None:
        while self._times and self._times[0] < cutoff:
            self._times.popleft()
