"""The item in a photo taken in context: the saliency cut-out an added photo gets."""

import cv2
import numpy as np

from edgelens.catalog.isolate import item_region, shipped_isolator
from edgelens.samples.photos import load_photo


def test_an_item_on_a_shelf_is_cut_out_on_white_and_a_plain_photo_is_kept_whole():
    isolator = shipped_isolator()
    assert isolator is not None, "the web and eval extras ship the saliency model"
    rng = np.random.default_rng(3)
    shelf = np.full((480, 640, 3), 200, np.uint8) + rng.integers(0, 12, (480, 640, 3), np.uint8)
    item = cv2.resize(load_photo("coffee"), (200, 160))
    shelf[250:410, 380:580] = item
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
