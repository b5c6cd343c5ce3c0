from pathlib import Path

import cv2
import numpy as np
import pytest

from edgelens.errors import ImageDecodeError
from edgelens.featurizer.preprocess import (
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    PreprocessSpec,
    decode_image,
    resize_and_crop,
    to_model_input,
)

SPEC = PreprocessSpec()


def test_decode_matches_opencv_and_accepts_bytes_or_path(tmp_path: Path, chelsea: np.ndarray):
    path = tmp_path / "cat.png"
    cv2.imwrite(str(path), chelsea)
    from_path = decode_image(path)
    from_bytes = decode_image(path.read_bytes())
    assert from_path.shape == chelsea.shape and from_path.dtype == np.uint8
    np.testing.assert_array_equal(from_path, chelsea)
    np.testing.assert_array_equal(from_bytes, chelsea)


def test_grey_and_alpha_images_become_three_channel_bgr(tmp_path: Path):
    grey = np.full((20, 30), 77, np.uint8)
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 2] = 200  # red in OpenCV's BGRA
    for name, image in (("grey.png", grey), ("rgba.png", rgba)):
        cv2.imwrite(str(tmp_path / name), image)
    assert decode_image(tmp_path / "grey.png").shape == (20, 30, 3)
    decoded = decode_image(tmp_path / "rgba.png")
    assert decoded.shape == (20, 30, 3) and decoded[0, 0, 2] == 200


@pytest.mark.parametrize(
    "payload", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40]
)
def test_corrupt_buffers_raise_one_clear_error(payload: bytes):
    with pytest.raises(ImageDecodeError):
        decode_image(payload)


def test_truncated_jpeg_file_names_its_path(tmp_path: Path, chelsea: np.ndarray):
    _, encoded = cv2.imencode(".jpg", chelsea)
    path = tmp_path / "truncated.jpg"
    path.write_bytes(encoded.tobytes()[:200])
    with pytest.raises(ImageDecodeError, match=r"truncated\.jpg"):
        decode_image(path)


def test_missing_file_is_an_image_error(tmp_path: Path):
    with pytest.raises(ImageDecodeError, match=r"nope\.png"):
        decode_image(tmp_path / "nope.png")


def test_resize_and_crop_keeps_the_centre_square():
    image = np.zeros((300, 600, 3), np.uint8)
    image[:, 250:350] = 255  # a white vertical band in the centre
    crop = resize_and_crop(image, SPEC)
    assert crop.shape == (224, 224, 3)
    assert crop[:, 112].min() == 255  # the band survives in the middle
    assert crop[:, 0].max() == 0


def test_model_input_is_rgb_nchw_normalised_with_imagenet_stats():
    red_bgr = np.zeros((64, 64, 3), np.uint8)
    red_bgr[..., 2] = 255
    batch = to_model_input([red_bgr, red_bgr], SPEC)
    assert batch.shape == (2, 3, 224, 224) and batch.dtype == np.float32
    expected = [
        (v - m) / s for v, m, s in zip((1, 0, 0), IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, strict=True)
    ]
    np.testing.assert_allclose(batch[0, :, 100, 100], expected, rtol=1e-5)


def test_rejects_arrays_that_are_not_bgr_uint8():
    with pytest.raises(ImageDecodeError):
        to_model_input([np.zeros((10, 10), np.uint8)], SPEC)
    with pytest.raises(ImageDecodeError):
        to_model_input([np.zeros((10, 10, 3), np.float32)], SPEC)


def test_decompression_bomb_is_refused_before_it_is_allocated(png_bomb: bytes):
    import resource

    before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with pytest.raises(ImageDecodeError, match="cannot decode image"):
        decode_image(png_bomb)
    grown_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before_mb
    assert grown_mb < 150, f"the decoder allocated {grown_mb:.0f} MB for a refused image"
