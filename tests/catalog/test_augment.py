import hashlib

import numpy as np
import pytest

from edgelens.catalog.augment import MAX_VIEWS, CatalogRecipe, catalog_vectors
from edgelens.samples.photos import load_photo
from edgelens.samples.views import FRAME_SIZE

SHA = hashlib.sha256(b"coffee").hexdigest()


def test_views_start_with_the_photo_and_are_seeded_by_the_image_hash():
    photo = load_photo("coffee")
    views = CatalogRecipe().images(photo, SHA)
    assert len(views) == MAX_VIEWS and views[0] is photo
    again = CatalogRecipe().images(photo, SHA)
    other = CatalogRecipe().images(photo, hashlib.sha256(b"other").hexdigest())
    assert all(np.array_equal(a, b) for a, b in zip(views, again, strict=True))
    assert not np.array_equal(views[1], other[1])


def test_zoom_outs_come_first_and_show_the_item_small():
    photo = load_photo("coffee")
    _, near, far = CatalogRecipe(3).images(photo, SHA)
    width, height = FRAME_SIZE
    assert near.shape == far.shape == (height, width, 3)


def test_fewer_views_are_a_prefix_and_recipes_have_their_own_cache_id():
    photo = load_photo("coffee")
    three = CatalogRecipe(3).images(photo, SHA)
    eight = CatalogRecipe(8).images(photo, SHA)
    assert all(np.array_equal(a, b) for a, b in zip(three, eight[:3], strict=True))
    assert CatalogRecipe(3).recipe_id != CatalogRecipe(8).recipe_id
    with pytest.raises(ValueError):
        CatalogRecipe(0)


def test_catalog_vectors_give_one_matrix_per_image(featurizer):
    photos = [(SHA, load_photo("coffee")), (hashlib.sha256(b"r").hexdigest(), load_photo("rocket"))]
    matrices = catalog_vectors(featurizer=featurizer, recipe=CatalogRecipe(3), images=photos)
    assert [m.shape for m in matrices] == [(3, 1280), (3, 1280)]
    np.testing.assert_allclose(matrices[1][0], featurizer.embed([photos[1][1]])[0], atol=1e-5)
