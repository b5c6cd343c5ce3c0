"""Similarity gating decisions on unit vectors and a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from edgelens.device.gating import GateDecision, PublishGate


def _unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_same_view_is_suppressed_until_the_keepalive_is_due():
    gate = PublishGate(enabled=True, min_change_cosine=0.95, keepalive_s=1.0)
    view = _unit(1, 0, 0)
    decisions = [gate.decide(view, now) for now in (0.0, 0.2, 0.9, 1.0, 1.5, 2.1)]
    assert decisions == [
        GateDecision.FIRST,
        GateDecision.SUPPRESSED,
        GateDecision.SUPPRESSED,
        GateDecision.KEEPALIVE,
        GateDecision.SUPPRESSED,
        GateDecision.KEEPALIVE,
    ]
    assert (gate.suppressed, gate.keepalives) == (3, 2)


def test_a_changed_view_is_published_at_once():
    gate = PublishGate(enabled=True, min_change_cosine=0.95, keepalive_s=10.0)
    gate.decide(_unit(1, 0, 0), 0.0)
    assert gate.decide(_unit(0, 1, 0), 0.1) is GateDecision.CHANGED
    assert gate.decide(_unit(0, 1, 0.01), 0.2) is GateDecision.SUPPRESSED


def test_slow_drift_is_compared_with_the_last_published_vector():
    """Each step is tiny (cosine > 0.999 to the previous frame), yet the sum is sent."""
    gate = PublishGate(enabled=True, min_change_cosine=0.95, keepalive_s=100.0)
    angles = np.radians(np.arange(0, 40, 1.0))
    decisions = [gate.decide(_unit(np.cos(a), np.sin(a)), 0.0) for a in angles]
    sent = [int(np.degrees(a)) for a, d in zip(angles, decisions, strict=True) if d.publish]
    # cos(18.2°) = 0.95: a publish roughly every 19 degrees of drift
    assert sent == [0, 19, 38]


def test_disabled_gate_publishes_everything():
    gate = PublishGate(enabled=False, min_change_cosine=0.95, keepalive_s=1.0)
    view = _unit(1, 1)
    assert all(gate.decide(view, t).publish for t in (0.0, 0.01, 0.02))
    assert gate.suppressed == 0


@pytest.mark.parametrize(("cosine", "keepalive"), [(0.0, 1.0), (1.5, 1.0), (0.9, 0.0)])
def test_bad_gate_settings_are_refused(cosine, keepalive):
    with pytest.raises(ValueError):
        PublishGate(enabled=True, min_change_cosine=cosine, keepalive_s=keepalive)


def test_a_settled_frame_is_published_even_when_it_would_be_suppressed():
    gate = PublishGate(enabled=True, min_change_cosine=0.95, keepalive_s=1.0)
    view = _unit(1, 0, 0)
    assert gate.decide(view, 0.0) is GateDecision.FIRST
    assert gate.decide(view, 0.1, settled=True) is GateDecision.SETTLED
    # it counts as a publish: the keep-alive is due 1 s after it, not after the first
    assert gate.decide(view, 1.05) is GateDecision.SUPPRESSED
    assert gate.decide(view, 1.1) is GateDecision.KEEPALIVE
    # a frame published anyway keeps its own reason
    assert gate.decide(_unit(0, 1, 0), 1.2, settled=True) is GateDecision.CHANGED
    assert (gate.settled, gate.suppressed, gate.keepalives) == (1, 1, 1)
