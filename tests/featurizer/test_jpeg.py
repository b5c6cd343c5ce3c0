"""The focus view's header check: JPEGs a device sends pass, everything else is refused
before any decoder allocates for it."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from edgelens.errors import ImageDecodeError
from edgelens.featurizer.focus import decode_focus_view
from edgelens.featurizer.jpeg import MAX_VIEW_SIDE, jpeg_header
from edgelens.testing.strategies import view_jpegs


def _jpeg(image: np.ndarray, *params: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, list(params))
    assert ok
    return data.tobytes()


def _claiming(data: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its frame header claiming another size."""
    sof = data.index(b"\xff\xc0") if b"\xff\xc0" in data else data.index(b"\xff\xc2")
    patched = bytearray(data)
    patched[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(patched)


RNG = np.random.default_rng(0)
COLOUR = RNG.integers(0, 255, (300, 400, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("image", "params", "components"),
    [
        (COLOUR, (), 3),
        (COLOUR[..., 0].copy(), (), 1),
        (COLOUR, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), 3),
    ],
    ids=["colour", "grey", "progressive"],
)
def test_a_device_jpeg_passes_with_its_size(image, params, components):
    header = jpeg_header(_jpeg(image, *params))
    assert (header.width, header.height, header.components) == (400, 300, components)


def test_a_bomb_claiming_a_huge_frame_is_refused_before_decoding():
    bomb = _claiming(_jpeg(COLOUR), 8000, 7999)
    with pytest.raises(ImageDecodeError, match="8000x7999 px"):
        jpeg_header(bomb)
    with pytest.raises(ImageDecodeError, match=f"at most {MAX_VIEW_SIDE} px"):
        decode_focus_view(bomb)


@pytest.mark.parametrize("ext", [".png", ".webp", ".bmp"])
def test_other_formats_are_refused_even_when_small(ext):
    ok, data = cv2.imencode(ext, COLOUR[:32, :32])
    assert ok
    with pytest.raises(ImageDecodeError, match="not a JPEG"):
        decode_focus_view(data.tobytes())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not a JPEG"),
        (b"\xff\xd8", "no JPEG frame header"),
        (b"\xff\xd8\xff\xe0\x00\x01", "segment of length 1"),
        (b"\xff\xd8\x00\x00\x00\x00", "no JPEG marker"),
        (b"\xff\xd8\xff\xc0\x00\x11\x08\x01", "truncated JPEG frame header"),
        (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x04", "4 colour components"),
        (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x10\x03", "16x0 px"),
    ],
)
def test_malformed_headers_say_why(data, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        jpeg_header(data)


def test_a_real_view_still_decodes():
    view = decode_focus_view(_jpeg(COLOUR))
    assert view.shape == (300, 400, 3)


VIEWS = tuple(_jpeg(COLOUR[: 60 * n, : 80 * n]) for n in (1, 3, 5))


@settings(
    max_examples=int(os.environ.get("EDGELENS_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=view_jpegs(VIEWS))
def test_fuzzed_views_decode_small_or_raise_image_decode_error_only(data):
    try:
        view = decode_focus_view(data)
    except ImageDecodeError:
        return
    assert max(view.shape[:2]) <= MAX_VIEW_SIDE and view.dtype == np.uint8
