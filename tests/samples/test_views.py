import numpy as np

from edgelens.samples.views import FRAME_SIZE, camera_views


def test_views_are_seeded_camera_frames(chelsea):
    first = camera_views(chelsea, 3, seed=42)
    again = camera_views(chelsea, 3, seed=42)
    other = camera_views(chelsea, 3, seed=43)
    width, height = FRAME_SIZE
    assert all(v.shape == (height, width, 3) and v.dtype == np.uint8 for v in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    assert not np.array_equal(first[0], first[1])
