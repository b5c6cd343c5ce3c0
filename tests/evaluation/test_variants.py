import cv2
import numpy as np

from edgelens.evaluation.variants import (
    HUE_TURN,
    LABEL_AREA,
    colour_twin,
    is_colour,
    label_variant,
    variant_catalog,
    variant_images,
    variant_suite,
)


def _photos():
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.integers(0, 256, (60, 80, 1), np.uint8), 3, axis=2)
    colour = np.zeros((60, 80, 3), np.uint8)
    colour[..., 2], colour[..., 1] = 200, rng.integers(0, 100, (60, 80), np.uint8)
    return {"grey": grey, "red": colour}


def test_a_label_variant_differs_only_in_one_panel_of_a_fifth_to_a_third():
    photos = _photos()
    variant = label_variant(photos["red"], np.random.default_rng(3))
    changed = np.argwhere((variant != photos["red"]).any(axis=2))
    (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0)
    panel = (y1 - y0 + 1) * (x1 - x0 + 1) / (60 * 80)
    assert LABEL_AREA[0] - 0.03 <= panel <= LABEL_AREA[1] + 0.03
    assert len(changed) > 0.9 * (y1 - y0 + 1) * (x1 - x0 + 1)  # one filled panel


def test_a_colour_twin_turns_the_hue_and_keeps_brightness():
    red = _photos()["red"]
    twin = colour_twin(red)
    before, after = cv2.cvtColor(red, cv2.COLOR_BGR2HSV), cv2.cvtColor(twin, cv2.COLOR_BGR2HSV)
    saturated = before[..., 1] > 100
    turned = (after[..., 0].astype(int) - before[..., 0].astype(int)) % 180
    assert np.all(np.abs(turned[saturated] - HUE_TURN) <= 2)
    assert np.abs(after[..., 2].astype(int) - before[..., 2].astype(int)).max() <= 2


def test_only_colour_photos_get_a_twin_and_every_photo_a_label_variant():
    photos = _photos()
    assert is_colour(photos["red"]) and not is_colour(photos["grey"])
    variants = variant_images(photos, seed=5)
    assert set(variants) == {"grey", "grey-label", "red", "red-label", "red-hue"}
    again = variant_images(photos, seed=5)
    assert all(np.array_equal(variants[k], again[k]) for k in variants)
    other = variant_images(photos, seed=6)
    assert not np.array_equal(variants["red-label"], other["red-label"])


def test_the_variant_catalog_names_each_variant_an_item_and_queries_each():
    variants = variant_images(_photos(), seed=5)
    photos = variant_catalog(variants)
    assert [p.item.item_id for p in photos] == sorted(variants)
    assert len({p.sha256 for p in photos}) == len(photos)  # distinct images, distinct keys
    catalog, sets = variant_suite(photos[:2], views_per_item=2, seed=5)
    assert set(sets) == {"variants"}
    queried = [q.item_id for q in sets["variants"]]
    assert sorted(set(queried)) == sorted(p.item.item_id for p in catalog)
    assert len(queried) == 2 * len(catalog)
