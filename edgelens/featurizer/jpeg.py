"""A focus view is a small JPEG or nothing: checked from its header alone, before decoding.

A decoder given any bytes picks the format from their content and allocates what the
header claims: a few KB of lossless WebP or PNG can claim 8000x8000 pixels (192 MB to
decode). The header of a JPEG names its size before any pixel data, so a view is read as
a JPEG only, and only when its frame header (SOF) says grey or colour and at most
:data:`MAX_VIEW_SIDE` on each side, before a decoder touches it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from edgelens.errors import ImageDecodeError

# Devices send views of at most edgelens.featurizer.focus.VIEW_MAX_SIDE px (640 before), a
# larger camera crop shrunk before coding. The wire leaves room above that, not a bomb's worth.
MAX_VIEW_SIDE = 1024
_SOI = b"\xff\xd8"
# Start-of-frame markers (baseline, extended, progressive, lossless; Huffman or
# arithmetic): C0-CF except DHT (C4), JPG (C8) and DAC (CC), which are other segments.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SOS = 0xDA
_EOI = 0xD9
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn carry no length
_SEGMENT = struct.Struct(">H")
_FRAME = struct.Struct(">BHHB")  # precision, height, width, components


@dataclass(frozen=True)
class JpegHeader:
    width: int
    height: int
    components: int


def jpeg_header(data: bytes) -> JpegHeader:
    """The frame header of a JPEG that a view may be; :class:`ImageDecodeError` says why
    anything else is refused (not a JPEG, no frame header before the scan, too large,
    neither grey nor colour)."""
    if not data.startswith(_SOI):
        raise ImageDecodeError("focus view is not a JPEG (no start-of-image marker)")
    offset = len(_SOI)
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            raise ImageDecodeError(f"focus view: no JPEG marker at byte {offset}")
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if marker in _STANDALONE:
            offset += 2
            continue
        if marker in (_SOS, _EOI):
            break
        (length,) = _SEGMENT.unpack_from(data, offset + 2)
        if length < 2:
            raise ImageDecodeError(f"focus view: JPEG segment of length {length}")
        if marker in _SOF:
            return _frame(data, offset + 4, length - 2)
        offset += 2 + length
    raise ImageDecodeError("focus view: no JPEG frame header before its image data")


def _frame(data: bytes, start: int, length: int) -> JpegHeader:
    if length < _FRAME.size or start + _FRAME.size > len(data):
        raise ImageDecodeError("focus view: truncated JPEG frame header")
    _, height, width, components = _FRAME.unpack_from(data, start)
    if not (0 < width <= MAX_VIEW_SIDE and 0 < height <= MAX_VIEW_SIDE):
        raise ImageDecodeError(
            f"focus view of {width}x{height} px: at most {MAX_VIEW_SIDE} px a side"
        )
    if components not in (1, 3):
        raise ImageDecodeError(f"focus view with {components} colour components: grey or colour")
    return JpegHeader(width, height, components)
