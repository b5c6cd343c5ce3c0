"""Reading a catalog the way tests check it."""

from __future__ import annotations

from collections.abc import Sequence

from edgelens.catalog.augment import DEFAULT_RECIPE, CatalogRecipe
from edgelens.catalog.store import CatalogStore
from edgelens.featurizer.local_features import LocalFeatures
from edgelens.search.exact import ExactIndex


def first_photo_keypoints(
    store: CatalogStore, item_ids: Sequence[str], method: str
) -> dict[str, LocalFeatures]:
    """Each item's first photo's keypoints of ``method`` (items without any left out)."""
    found = store.photos_local_features(item_ids, method)
    return {item_id: photos[0][1] for item_id, photos in found.items()}


def index_from_catalog(
    store: CatalogStore, *, model_id: str, dim: int, recipe: CatalogRecipe = DEFAULT_RECIPE
) -> ExactIndex:
    """An exact index of all items with vectors of ``model_id`` (as the worker's loader
    builds one from the catalog); items of other models are not searchable."""
    index = ExactIndex(model_id, dim)
    items, vectors = store.vectors(model_id, recipe.recipe_id)
    if items:
        index.upsert(items, vectors)
    return index
