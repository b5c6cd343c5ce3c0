"""The item in a photo taken in context: the saliency crop a correction applies."""

import cv2
import numpy as np

from edgelens.catalog.isolate import item_region, shipped_isolator
from edgelens.samples.photos import load_photo


def test_an_item_on_a_shelf_is_cropped_to_and_a_plain_photo_is_kept_whole():
    isolator = shipped_isolator()
    assert isolator is not None, "the web and eval extras ship the saliency model"
    rng = np.random.default_rng(3)
    shelf = np.full((480, 640, 3), 200, np.uint8) + rng.integers(0, 12, (480, 640, 3), np.uint8)
    item = cv2.resize(load_photo("coffee"), (200, 160))
    shelf[250:410, 380:580] = item
    x0, y0, x1, y1 = isolator.box(shelf)
    assert x0 <= 385 and y0 <= 255 and x1 >= 575 and y1 >= 405, "the item is inside"
    assert (x1 - x0) * (y1 - y0) < 0.3 * 640 * 480, "most of the shelf is not"
    assert item_region(shelf).shape[:2] == (y1 - y0, x1 - x0)

    plain = np.full((240, 320, 3), 128, np.uint8)
    assert item_region(plain) is plain, "nothing stands out: kept whole"
