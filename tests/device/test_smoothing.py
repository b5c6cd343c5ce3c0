import cv2
import numpy as np
import pytest

from edgelens.demo.video import hand_shake
from edgelens.device.smoothing import TemporalSmoother, frame_sharpness
from edgelens.samples.photos import load_photo
from edgelens.samples.views import camera_view

SHARP = 100.0


def _unit(v):
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_stable_view_is_averaged_and_a_new_view_goes_out_at_once():
    rng = np.random.default_rng(0)
    item_a, item_b = _unit(rng.normal(size=64)), _unit(rng.normal(size=64))
    smoother = TemporalSmoother(window=4, same_view_cosine=0.8)
    noisy = [_unit(item_a + rng.normal(0, 0.05, 64)) for _ in range(4)]  # window 4: all four
    out = [smoother.update(v, SHARP) for v in noisy]
    np.testing.assert_allclose(out[0], noisy[0])  # nothing to average yet
    np.testing.assert_allclose(out[-1], _unit(np.sum(noisy, axis=0)), atol=1e-6)
    assert float(out[-1] @ item_a) > float(noisy[-1] @ item_a)  # averaging removes noise
    switched = smoother.update(item_b, SHARP)
    np.testing.assert_allclose(switched, item_b)  # no lag behind the old item
    assert smoother.view_changes == 1


def test_a_sharp_odd_frame_is_a_view_change_that_does_not_pull_the_next_ones():
    rng = np.random.default_rng(1)
    item = _unit(rng.normal(size=64))
    smoother = TemporalSmoother(window=5, same_view_cosine=0.8)
    for _ in range(3):
        smoother.update(item, SHARP)
    other = _unit(rng.normal(size=64))
    np.testing.assert_allclose(smoother.update(other, SHARP), other)
    np.testing.assert_allclose(smoother.update(item, SHARP), item, atol=1e-6)


def test_window_one_is_off():
    smoother = TemporalSmoother(window=1, same_view_cosine=0.8)
    v = _unit(np.arange(1, 9, dtype=np.float32))
    w = _unit(np.arange(1, 9, dtype=np.float32) + 0.5)
    assert float(v @ w) > 0.8
    np.testing.assert_allclose(smoother.update(v, SHARP), v)
    np.testing.assert_allclose(smoother.update(w, SHARP), w)
    with pytest.raises(ValueError):
        TemporalSmoother(window=0, same_view_cosine=0.8)


def test_sharpness_separates_blurred_frames():
    frame = camera_view(load_photo("clock"), np.random.default_rng(0))
    blurred = cv2.GaussianBlur(frame, (0, 0), 3)
    assert frame_sharpness(blurred) < 0.25 * frame_sharpness(frame)


def test_a_blurred_frame_of_a_held_item_does_not_flip_the_match(featurizer):
    """A hand-held camera on one item, then a badly blurred frame, then the item again:
    the blurred frame is held back; the published vectors stay on the item."""
    rng = np.random.default_rng(4)
    held = camera_view(load_photo("rocket"), rng)
    frames = [hand_shake(held, rng) for _ in range(4)]
    frames.append(cv2.GaussianBlur(frames[-1], (0, 0), 9))
    frames.append(hand_shake(held, rng))
    vectors = featurizer.embed(frames)
    smoother = TemporalSmoother(window=4, same_view_cosine=0.8)
    published = [
        smoother.update(v, frame_sharpness(f)) for v, f in zip(vectors, frames, strict=True)
    ]
    assert float(vectors[4] @ vectors[3]) < 0.8, "the blur really changes the raw vector"
    assert published[4] is None and smoother.held_blurred == 1
    assert smoother.view_changes == 0
    # after the glitch the stable view's average goes out again, untouched by the blur
    expected = np.sum([vectors[i] for i in (1, 2, 3, 5)], axis=0)  # window 4: 3 before + now
    np.testing.assert_allclose(published[5], expected / np.linalg.norm(expected), atol=1e-5)
