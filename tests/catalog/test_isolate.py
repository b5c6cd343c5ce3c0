"""The item in a photo taken in context: the saliency cut-out an added photo gets."""

import cv2
import numpy as np

from edgelens.catalog.isolate import item_region, shipped_isolator
from edgelens.samples.photos import load_photo


def _shelf() -> np.ndarray:
    """A 640x480 shelf with the coffee cup at (380, 250)-(580, 410)."""
    rng = np.random.default_rng(3)
    shelf = np.full((480, 640, 3), 200, np.uint8) + rng.integers(0, 12, (480, 640, 3), np.uint8)
    shelf[250:410, 380:580] = cv2.resize(load_photo("coffee"), (200, 160))
    return shelf


def test_an_item_on_a_shelf_is_cut_out_on_white_and_a_plain_photo_is_kept_whole():
    isolator = shipped_isolator()
    assert isolator is not None, "the web and eval extras ship the saliency model"
    shelf = _shelf()
    x0, y0, x1, y1 = isolator.box(shelf)
    assert x0 <= 385 and y0 <= 255 and x1 >= 575 and y1 >= 405, "the item is inside"
    assert (x1 - x0) * (y1 - y0) < 0.3 * 640 * 480, "most of the shelf is not"
    cut = item_region(shelf)
    assert cut.shape[:2] == (y1 - y0, x1 - x0)
    inner = (slice(260 - y0, 400 - y0), slice(390 - x0, 570 - x0))
    assert np.array_equal(cut[inner], shelf[260:400, 390:570]), "the item's pixels are kept"
    corners = cut[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.min() > 235 > shelf[y0:y1, x0:x1].mean() + 20, "the shelf around it is white"

    plain = np.full((240, 320, 3), 128, np.uint8)
    assert item_region(plain) is plain, "nothing stands out: kept whole"


def test_a_large_photo_is_cut_out_as_its_smaller_self_is():
    """A phone photo (here 12 MP) is found and cut on a shrunk copy, then scaled back."""
    isolator = shipped_isolator()
    assert isolator is not None
    small = _shelf()
    large = cv2.resize(small, None, fx=6, fy=6, interpolation=cv2.INTER_NEAREST)
    x0, y0, x1, y1 = isolator.box(small)
    big = isolator.box(large)
    assert big is not None
    assert np.allclose(big, (6 * x0, 6 * y0, 6 * x1, 6 * y1), atol=6), (big, (x0, y0, x1, y1))
    cut = item_region(large)
    assert cut.shape[:2] == (big[3] - big[1], big[2] - big[0])
    inner = (slice(6 * 260 - big[1], 6 * 400 - big[1]), slice(6 * 390 - big[0], 6 * 570 - big[0]))
    item = large[6 * 260 : 6 * 400, 6 * 390 : 6 * 570]
    assert np.abs(cut[inner].astype(int) - item).max() <= 1, "the item's pixels are kept"
    assert cut[[0, 0, -1, -1], [0, -1, 0, -1]].min() > 235, "the shelf around it is white"


def test_a_less_salient_part_inside_the_item_is_kept_not_whitened(monkeypatch):
    isolator = shipped_isolator()
    assert isolator is not None
    photo = np.full((600, 800, 3), 90, np.uint8)

    def label_in_the_middle(image, size):  # the item, with a plain label less salient
        salient = np.zeros(size[::-1], np.float32)
        salient[100:500, 200:600] = 1
        salient[200:400, 300:500] = 0.2
        return salient

    monkeypatch.setattr(isolator, "saliency", label_in_the_middle)
    cut = isolator(photo)
    x0, y0, _, _ = isolator.box(photo)
    label = cut[200 - y0 : 400 - y0, 300 - x0 : 500 - x0]
    assert (label == 90).all(), "the label is the item's, not background"
    assert cut[0, 0].min() > 90 + 50, "beyond the item's outline it fades to white"
