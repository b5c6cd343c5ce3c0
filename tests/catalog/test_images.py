"""Stored catalog images: their format from their bytes, read with a size cap, ids whole."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgelens.catalog.images import image_type, read_image_file, stored_type
from edgelens.catalog.ingest import add_items
from edgelens.catalog.models import ItemSource
from edgelens.errors import ImageDecodeError

PIXELS = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)


def _encoded(ext: str) -> bytes:
    ok, data = cv2.imencode(ext, PIXELS)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(
    ("ext", "suffix", "media_type"),
    [
        (".jpg", ".jpg", "image/jpeg"),
        (".png", ".png", "image/png"),
        (".webp", ".webp", "image/webp"),
        (".bmp", ".bmp", "image/bmp"),
        (".tiff", ".tif", "image/tiff"),
    ],
)
def test_the_format_comes_from_the_bytes(ext, suffix, media_type):
    kind = image_type(_encoded(ext)[:12])
    assert (kind.suffix, kind.media_type) == (suffix, media_type)


@pytest.mark.parametrize("head", [b"<html><script>", b"GIF89a", b"", b"%PDF-1.7"])
def test_anything_else_is_not_an_image(head):
    with pytest.raises(ImageDecodeError, match="not a JPEG, PNG, WebP, BMP or TIFF"):
        image_type(head)


def test_files_are_read_with_a_cap_and_only_when_regular(tmp_path: Path):
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 101)
    assert len(read_image_file(big, max_bytes=101)) == 101
    with pytest.raises(ImageDecodeError, match="larger than 100 bytes"):
        read_image_file(big, max_bytes=100)
    with pytest.raises(ImageDecodeError, match="not a regular file"):
        read_image_file(Path("/dev/zero"))


@pytest.mark.parametrize("catalog_backend", ["sqlite"])  # file storage: any engine
def test_an_image_named_html_is_stored_as_what_it_is(store, featurizer, tmp_path: Path):
    """PNG bytes followed by a script, named .html: stored (and so served) as a PNG; text
    named .png and a device file are skipped with their reasons, and nothing else is lost."""
    disguised = tmp_path / "poster.html"
    disguised.write_bytes(_encoded(".png") + b"<script>document.title='owned'</script>")
    text = tmp_path / "notes.png"
    text.write_text("<html><script>alert(1)</script></html>")
    report = add_items(
        store=store,
        featurizer=featurizer,
        sources=[
            ItemSource("poster", (disguised,)),
            ItemSource("notes", (text,)),
            ItemSource("zero", (Path("/dev/zero"),)),
            ItemSource("bad\n", (disguised,)),
            ItemSource("coffee/delete", (disguised,)),
        ],
        images_dir=tmp_path / "images",
    )
    assert report.added == 1
    stored = store.get("poster").image_file
    assert stored.endswith(".png")
    assert stored_type(tmp_path / "images" / stored).media_type == "image/png"
    reasons = dict(report.failed)
    assert "not a JPEG, PNG" in reasons[str(text)]
    assert "not a regular file" in reasons["/dev/zero"]
    assert sum("item id" in reason for _, reason in report.failed) == 2
    assert [item.item_id for item in store.items()] == ["poster"]
