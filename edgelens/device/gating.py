"""Similarity gating: publish a vector only when the view changed, or to keep alive.

A still camera produces the same vector fifteen times a second; sending every one
costs broker, worker and radio time and shows the user nothing new. So a vector
goes out when its cosine to the last *published* vector falls below
``min_change_cosine`` (the view changed enough to change the match), or when
``keepalive_s`` has passed since the last publish (the dashboard and the worker
see the device is alive and still looking at the same thing). Comparing with the
last published vector, not the last frame, means a slow drift is sent once it adds
up instead of being missed frame by frame. A frame on which the view has just settled
(device/settle.py) goes out even when it would be suppressed, as it carries the view's
focus view, which travels once per view.
"""

from __future__ import annotations

import enum

import numpy as np


class GateDecision(enum.Enum):
    FIRST = "first"  # nothing published yet
    CHANGED = "changed"  # the view moved away from the last published vector
    KEEPALIVE = "keepalive"  # same view, but the keep-alive interval has passed
    SETTLED = "settled"  # same view, recently published, but settled: sent with its view
    SUPPRESSED = "suppressed"  # same view, recently published: not sent

    @property
    def publish(self) -> bool:
        return self is not GateDecision.SUPPRESSED


class PublishGate:
    """Decides per vector whether to publish; counts each decision.

    ``enabled=False`` publishes every vector (each counted as changed), which the
    live-latency benchmark and tests that follow every frame rely on.
    """

    def __init__(self, *, enabled: bool, min_change_cosine: float, keepalive_s: float) -> None:
        if not 0 < min_change_cosine <= 1:
            raise ValueError("min_change_cosine is a cosine in (0, 1]")
        if keepalive_s <= 0:
            raise ValueError("keepalive_s must be positive")
        self.enabled = enabled
        self._threshold = min_change_cosine
        self._keepalive_s = keepalive_s
        self._last: np.ndarray | None = None
        self._last_at = 0.0
        self.counts = {decision: 0 for decision in GateDecision}

    @property
    def suppressed(self) -> int:
        return self.counts[GateDecision.SUPPRESSED]

    @property
    def keepalives(self) -> int:
        return self.counts[GateDecision.KEEPALIVE]

    @property
    def settled(self) -> int:
        return self.counts[GateDecision.SETTLED]

    def decide(self, embedding: np.ndarray, now: float, *, settled: bool = False) -> GateDecision:
        """The decision for a unit vector seen at monotonic time ``now``; ``settled``: the
        view has just settled and its focus view is owed, so it is published regardless
        (as SETTLED where it would have been suppressed)."""
        decision = self._decision(embedding, now)
        if settled and decision is GateDecision.SUPPRESSED:
            decision = GateDecision.SETTLED
        self.counts[decision] += 1
        if decision.publish:
            self._last, self._last_at = embedding, now
        return decision

    def _decision(self, embedding: np.ndarray, now: float) -> GateDecision:
        if self._last is None:
            return GateDecision.FIRST
        if not self.enabled or float(self._last @ embedding) < self._threshold:
            return GateDecision.CHANGED
        if now - self._last_at >= self._keepalive_s:
            return GateDecision.KEEPALIVE
        return GateDecision.SUPPRESSED
