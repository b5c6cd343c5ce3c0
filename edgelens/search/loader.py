"""Build an index from the catalog for one model."""

from __future__ import annotations

from edgelens.catalog.augment import DEFAULT_RECIPE, CatalogRecipe
from edgelens.catalog.store import CatalogStore
from edgelens.search.exact import ExactIndex


def index_from_catalog(
    store: CatalogStore, *, model_id: str, dim: int, recipe: CatalogRecipe = DEFAULT_RECIPE
) -> ExactIndex:
    """All items with vectors of ``model_id``; items of other models are not searchable."""
    index = ExactIndex(model_id, dim)
    items, vectors = store.vectors(model_id, recipe.recipe_id)
    if items:
        index.upsert(items, vectors)
    return index
