"""What a stored catalog image is, from its bytes, never from the name it came with.

An image is stored under its sha256 with the suffix of the format its first bytes show,
and served with that format's media type: a file named ``.html`` that holds PNG bytes and
a script is stored and served as a PNG (and ``nosniff`` keeps the browser to that), and
bytes of no image format are not stored at all. Files are read with a size cap, and only
regular files (``/dev/zero`` is not an image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgelens.errors import ImageDecodeError

# Far above a product photo (a 24 MP JPEG is ~10 MB), far below what would exhaust memory.
MAX_IMAGE_BYTES = 64 * 1024 * 1024
SNIFF_BYTES = 12


@dataclass(frozen=True)
class ImageType:
    suffix: str
    media_type: str


JPEG = ImageType(".jpg", "image/jpeg")
PNG = ImageType(".png", "image/png")
WEBP = ImageType(".webp", "image/webp")
BMP = ImageType(".bmp", "image/bmp")
TIFF = ImageType(".tif", "image/tiff")
_SIGNATURES = (
    (b"\xff\xd8\xff", JPEG),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"BM", BMP),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
)


def image_type(head: bytes) -> ImageType:
    """The format of an image from its first :data:`SNIFF_BYTES` bytes; ImageDecodeError
    for anything else."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    raise ImageDecodeError("not a JPEG, PNG, WebP, BMP or TIFF image")


def read_image_file(path: Path, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """A regular file's bytes, refused (ImageDecodeError, naming why) when larger than
    ``max_bytes``; OSError as reading raises it."""
    with path.open("rb") as handle:
        if not path.is_file():
            raise ImageDecodeError(f"{path} is not a regular file")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageDecodeError(f"{path} is larger than {max_bytes} bytes")
    return data


def stored_type(path: Path) -> ImageType:
    """The format of a stored image, from its content (older catalogs kept names' suffixes)."""
    with path.open("rb") as handle:
        return image_type(handle.read(SNIFF_BYTES))
