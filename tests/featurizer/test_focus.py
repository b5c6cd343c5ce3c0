"""The focus box and the focus view a published frame carries to the worker."""

import cv2
import numpy as np
import pytest

from edgelens.errors import ImageDecodeError
from edgelens.featurizer.focus import (
    MIN_CODED_SIDE,
    VIEW_MAX_SIDE,
    decode_focus_view,
    focus_crop,
    focus_view_jpeg,
    focus_views,
    focus_xyxy,
)
from edgelens.settings import VIEW_BYTES
from edgelens.wire.features import MAX_JPEG_BYTES


def test_the_box_is_centred_and_covers_the_area():
    x0, y0, x1, y1 = focus_xyxy(640, 480)
    assert (x0 + x1) / 2 == pytest.approx(320, abs=1) and (y0 + y1) / 2 == pytest.approx(240, abs=1)
    assert (x1 - x0) * (y1 - y0) / (640 * 480) == pytest.approx(0.6, abs=0.01)


def test_the_worker_featurizes_the_view_and_its_own_focus_box(chelsea):
    frame = cv2.resize(chelsea, (640, 480))
    view, inner = focus_views(focus_crop(frame))
    assert view.shape == focus_crop(frame).shape
    assert inner.shape[0] * inner.shape[1] / (640 * 480) == pytest.approx(0.36, abs=0.01)
    np.testing.assert_array_equal(inner, focus_crop(view))


def test_the_view_is_the_focus_box_in_colour(chelsea):
    frame = cv2.resize(chelsea, (640, 480))
    data = focus_view_jpeg(frame, MAX_JPEG_BYTES)
    view = decode_focus_view(data)
    box = cv2.resize(focus_crop(frame), view.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert max(view.shape[:2]) == VIEW_MAX_SIDE and view.shape[2] == 3
    assert np.abs(view.astype(int) - box).mean() < 6


def test_a_large_frame_travels_at_most_the_view_size(chelsea):
    frame = cv2.resize(chelsea, (1920, 1080))
    view = decode_focus_view(focus_view_jpeg(frame, MAX_JPEG_BYTES))
    assert max(view.shape[:2]) == VIEW_MAX_SIDE and view.shape[2] == 3


def test_a_busy_view_is_coded_coarser_then_smaller_until_it_fits():
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    full = focus_crop(noise).shape[:2]
    roomy = focus_view_jpeg(noise, MAX_JPEG_BYTES)
    coarser = focus_view_jpeg(noise, len(roomy) - 1)
    assert len(coarser) < len(roomy)
    assert max(decode_focus_view(coarser).shape[:2]) == min(VIEW_MAX_SIDE, max(full))
    smaller = focus_view_jpeg(noise, len(coarser) // 3)
    assert len(smaller) <= len(coarser) // 3
    assert MIN_CODED_SIDE <= max(decode_focus_view(smaller).shape[:2]) < VIEW_MAX_SIDE
    with pytest.raises(ImageDecodeError, match="does not fit"):
        focus_view_jpeg(noise, 300)


def test_the_device_budget_bounds_every_view(chelsea):
    """The default budget holds for an ordinary frame at any camera size."""
    for size in ((640, 480), (1920, 1080), (320, 240)):
        data = focus_view_jpeg(cv2.resize(chelsea, size), VIEW_BYTES)
        assert len(data) <= VIEW_BYTES and decode_focus_view(data).ndim == 3


def test_a_grey_view_decodes_grey(chelsea):
    """Devices of wire version 3's first release sent the box grey: verifiable still."""
    grey = cv2.cvtColor(focus_crop(chelsea), cv2.COLOR_BGR2GRAY)
    ok, data = cv2.imencode(".jpg", grey)
    assert ok and decode_focus_view(data.tobytes()).ndim == 2


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a jpeg",
        b"\xff\xd8\xff" + bytes(100),
        cv2.imencode(".png", np.zeros((8, 8, 3)))[1],
        cv2.imencode(".jpg", np.zeros((8, 8, 3)))[1],
    ],
    ids=["empty", "text", "truncated", "png", "too small"],
)
def test_an_unusable_view_is_a_decode_error(data):
    with pytest.raises(ImageDecodeError, match="JPEG"):
        decode_focus_view(bytes(data))
