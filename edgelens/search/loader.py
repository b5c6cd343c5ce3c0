"""Open the index a worker serves: exact for small catalogs, a persisted ANN for large ones.

Below ``ann_min_vectors`` exact search is both exact and fast enough; above it the
faiss index keeps answers quick up to millions of items. The ANN index is saved with
the catalog change it reflects, so a restart loads it and then catches up with the
changes since, instead of rebuilding.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.models import CatalogItem
from edgelens.catalog.store import CatalogStore
from edgelens.errors import SearchError
from edgelens.search.base import VectorIndex
from edgelens.search.exact import ExactIndex
from edgelens.settings import redact_urls

if TYPE_CHECKING:  # pymilvus is the [vectordb] extra
    from edgelens.search.milvus import MilvusIndex

logger = logging.getLogger(__name__)

# (shared index, catalog change it will reflect) -> held while one worker fills it.
FillGuard = Callable[[str, int], AbstractContextManager[None]]


@dataclass(frozen=True)
class OpenedIndex:
    index: VectorIndex
    change_seq: int  # the catalog change the index reflects; follow from here
    # Set when every worker queries this one copy (a Milvus collection): names it, so only
    # one worker writes the catalog's changes into it (edgelens.cloud.index_writer).
    shared_index: str | None = None


def open_index(
    store: CatalogStore,
    *,
    model_id: str,
    dim: int,
    recipe: CatalogRecipe,
    backend: str,
    ann_min_vectors: int,
    index_dir: Path,
    milvus_uri: str = "",
    milvus_index: str = "HNSW",
    milvus_staging_dir: Path | None = None,
    fill_alone: FillGuard | None = None,
) -> OpenedIndex:
    """The index for ``backend`` ("exact", "ann", "milvus" or "auto" by catalog size).
    ``fill_alone(shared_index, seq)`` guards the first fill of a shared index (a new Milvus
    collection), so that one worker fills it while the others wait, and says it reflects
    change ``seq``."""
    seq = store.last_change  # read first: changes made meanwhile are re-applied, harmlessly
    if backend == "milvus":
        milvus, shared = _milvus(
            store,
            model_id,
            dim,
            recipe,
            uri=milvus_uri,
            index_type=milvus_index,
            staging_dir=milvus_staging_dir,
            fill_alone=fill_alone,
            seq=seq,
        )
        return OpenedIndex(milvus, seq, shared_index=shared)
    if backend == "ann" and (saved := _load_saved(model_id, recipe, index_dir)) is not None:
        return saved
    items, vectors = store.vectors(model_id, recipe.recipe_id)
    rows = sum(matrix.shape[0] for matrix in vectors)
    if backend == "exact" or not items or (backend == "auto" and rows < ann_min_vectors):
        index = ExactIndex(model_id, dim)
        if items:
            index.upsert(items, vectors)
        logger.info("exact index: %d items, %d vectors", len(items), rows)
        return OpenedIndex(index, seq)
    return _ann(model_id, recipe, index_dir, items, vectors, seq)


def _milvus(
    store: CatalogStore,
    model_id: str,
    dim: int,
    recipe: CatalogRecipe,
    *,
    uri: str,
    index_type: str,
    staging_dir: Path | None,
    fill_alone: FillGuard | None,
    seq: int,
) -> tuple[MilvusIndex, str]:
    """The model's Milvus collection and its shared name, filled from the catalog the first
    time (a new model's reindex, a first start) by :meth:`MilvusIndex.bulk_load`, the
    fastest way the server takes rows, with its progress logged; by one worker only where
    ``fill_alone`` guards it."""
    from edgelens.search.milvus import INDEX_SETTINGS, MilvusIndex

    index_params, search_params, filtered_search_params = INDEX_SETTINGS[index_type]
    index = MilvusIndex(
        uri=uri,
        model_id=model_id,
        dim=dim,
        max_views=recipe.views,
        index_type=index_type,
        index_params=index_params,
        search_params=search_params,
        filtered_search_params=filtered_search_params,
    )
    shared = f"{index.collection}@{redact_urls(uri)}"
    if len(index) == 0:
        with fill_alone(shared, seq) if fill_alone else contextlib.nullcontext():
            if len(index) == 0:  # else another worker filled it while this one waited
                items, vectors = store.vectors(model_id, recipe.recipe_id)
                if items:
                    index.bulk_load(items, vectors, staging_dir=staging_dir)
    logger.info("Milvus collection %s at %s: %d items", index.collection, uri, len(index))
    return index, shared


def save_if_persistent(
    index: VectorIndex, *, recipe: CatalogRecipe, index_dir: Path, change_seq: int
) -> None:
    """Save an ANN index with the change it reflects, so the next start skips the rebuild."""
    from edgelens.search.ann import AnnIndex
    from edgelens.search.persist import save_index

    if isinstance(index, AnnIndex):
        save_index(
            index, _ann_path(index.model_id, recipe, index_dir), catalog_version=str(change_seq)
        )


def _ann_path(model_id: str, recipe: CatalogRecipe, index_dir: Path) -> Path:
    return index_dir / f"{model_id}-{recipe.recipe_id}.npz"


def _ann(
    model_id: str,
    recipe: CatalogRecipe,
    index_dir: Path,
    items: list[CatalogItem],
    vectors: list[np.ndarray],
    seq: int,
) -> OpenedIndex:
    from edgelens.search.ann import AnnIndex
    from edgelens.search.persist import save_index

    saved = _load_saved(model_id, recipe, index_dir)
    if saved is not None:
        return saved
    index = AnnIndex.build(model_id=model_id, items=items, vectors=vectors)
    save_index(index, _ann_path(model_id, recipe, index_dir), catalog_version=str(seq))
    return OpenedIndex(index, seq)


def _load_saved(model_id: str, recipe: CatalogRecipe, index_dir: Path) -> OpenedIndex | None:
    from edgelens.search.persist import load_index

    path = _ann_path(model_id, recipe, index_dir)
    if not path.exists():
        return None
    try:
        saved = load_index(path, model_id=model_id)
    except (SearchError, ValueError) as exc:
        logger.warning("rebuilding the ANN index: %s", exc)
        return None
    logger.info("ANN index loaded from %s at change %s", path, saved.catalog_version)
    return OpenedIndex(saved.index, int(saved.catalog_version))
