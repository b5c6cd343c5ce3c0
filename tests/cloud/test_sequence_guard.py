"""Per-device ordering of feature messages."""

from __future__ import annotations

import numpy as np
import pytest

from edgelens.cloud.sequence_guard import SequenceGuard
from edgelens.errors import RejectedMessage
from edgelens.wire.features import FeatureMessage

NOW = 1_800_000_000.0


def _message(device: str, seq: int, captured_at: float) -> FeatureMessage:
    return FeatureMessage(device, seq, captured_at, "model-x", np.ones(4, dtype=np.float32))


def _reason(guard: SequenceGuard, message: FeatureMessage) -> str | None:
    try:
        guard.check(message, now=NOW)
    except RejectedMessage as exc:
        return exc.reason
    return None


def test_newer_messages_pass_and_older_or_repeated_ones_are_refused():
    guard = SequenceGuard()
    assert _reason(guard, _message("a", 1, NOW - 2)) is None
    assert _reason(guard, _message("a", 2, NOW - 1)) is None
    assert _reason(guard, _message("a", 2, NOW - 1)) == "replayed"
    assert _reason(guard, _message("a", 1, NOW - 2)) == "out_of_order"
    assert _reason(guard, _message("b", 1, NOW - 2)) is None, "devices are independent"


def test_a_restarted_device_counts_from_zero_again():
    guard = SequenceGuard()
    assert _reason(guard, _message("a", 900, NOW - 60)) is None
    assert _reason(guard, _message("a", 0, NOW)) is None


def test_refused_messages_do_not_move_the_mark():
    guard = SequenceGuard(max_clock_ahead_s=30)
    assert _reason(guard, _message("a", 7, NOW + 3600)) == "clock_ahead"
    assert _reason(guard, _message("a", 1, NOW)) is None, "the future stamp was not kept"
    assert _reason(guard, _message("a", 2, NOW + 10)) is None, "small skew is tolerated"


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("edgelens.cloud.sequence_guard.MAX_DEVICES", 3)
    guard = SequenceGuard()
    for device in "abcd":
        guard.check(_message(device, 1, NOW), now=NOW)
    # "a" was forgotten, so its old message is no longer recognised; the others still are.
    assert _reason(guard, _message("a", 1, NOW)) is None
    assert _reason(guard, _message("d", 1, NOW)) == "replayed"
