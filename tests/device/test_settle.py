"""When the focus view is owed: once per view, when the camera has settled on it."""

from __future__ import annotations

import numpy as np
import pytest

from edgelens.device.settle import ViewSettle


def _unit(degrees: float) -> np.ndarray:
    """A unit vector in a plane, ``degrees`` from the first axis (cos 0.95 = 18.2°)."""
    angle = np.radians(degrees)
    return np.array([np.cos(angle), np.sin(angle), 0.0], dtype=np.float32)


def _owed(settle: ViewSettle, angles: list[float]) -> list[int]:
    """The frames whose view was owed, each sent at once."""
    owed = []
    for index, angle in enumerate(angles):
        if settle.update(_unit(angle)):
            settle.sent()
            owed.append(index)
    return owed


def _settle() -> ViewSettle:
    return ViewSettle(frames=3, settle_cosine=0.95, same_view_cosine=0.8)


def test_a_still_view_is_owed_once_when_it_has_settled():
    assert _owed(_settle(), [0.0] * 20) == [2]


def test_a_shaking_hand_settles_and_a_small_drift_of_the_same_view_owes_nothing_more():
    shaky = [0, 5, -4, 3, 10, 20, 25, 30, 25, 20]  # all within 36.8° (cos 0.8) of frame 2
    assert _owed(_settle(), shaky) == [2]


def test_a_new_view_is_owed_again_once_it_has_settled():
    angles = [0.0] * 5 + [90.0] * 5  # cos 0 to the first view
    settle = _settle()
    assert _owed(settle, angles) == [2, 7]
    assert settle.new_views == 1


def test_a_panning_camera_never_settles():
    """10° a frame: two frames apart are already below cosine 0.95."""
    assert _owed(_settle(), [10.0 * i for i in range(30)]) == []


def test_an_owed_view_that_did_not_go_out_stays_owed():
    settle = _settle()
    assert [settle.update(_unit(0)) for _ in range(4)] == [False, False, True, True]
    settle.sent()
    assert not settle.update(_unit(0)) and not settle.owed


@pytest.mark.parametrize(("frames", "cosine"), [(0, 0.9), (3, 0.0), (3, 1.5)])
def test_bad_settle_settings_are_refused(frames, cosine):
    with pytest.raises(ValueError):
        ViewSettle(frames=frames, settle_cosine=cosine, same_view_cosine=0.8)
