"""Import and re-index: featurize only images whose (sha256, model id, recipe) is not cached.

Each image's keypoints for spatial verification are extracted once too, by (sha256, method).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelens.catalog.augment import DEFAULT_RECIPE, CatalogRecipe, catalog_vectors
from edgelens.catalog.models import CatalogItem, IngestReport, ItemSource
from edgelens.catalog.store import CatalogStore
from edgelens.errors import ImageDecodeError, ItemNotFoundError
from edgelens.featurizer import local_features
from edgelens.featurizer.preprocess import decode_image
from edgelens.featurizer.runtime import Featurizer

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]  # called with the number of sources just handled


@dataclass
class _Pending:
    source: ItemSource
    sha256: str
    image_file: str
    image_bgr: np.ndarray | None  # None when vectors and keypoints are both cached
    needs_vectors: bool
    needs_keypoints: bool


def add_items(
    *,
    store: CatalogStore,
    featurizer: Featurizer,
    sources: Sequence[ItemSource],
    images_dir: Path,
    recipe: CatalogRecipe = DEFAULT_RECIPE,
    progress: Progress | None = None,
) -> IngestReport:
    """Add or update items; corrupt or unreadable images are reported and skipped."""
    report = IngestReport()
    batch: list[_Pending] = []
    cache_key = (featurizer.model_id, recipe.recipe_id)
    for source in sources:
        pending = _prepare(source, store, cache_key, images_dir, report)
        if pending is not None:
            batch.append(pending)
        if len(batch) >= max(1, featurizer.batch_size // recipe.views):
            _commit(batch, store, featurizer, recipe, report)
            batch = []
        if progress:
            progress(1)
    if batch:
        _commit(batch, store, featurizer, recipe, report)
    return report


def reindex(
    *,
    store: CatalogStore,
    featurizer: Featurizer,
    images_dir: Path,
    recipe: CatalogRecipe = DEFAULT_RECIPE,
    progress: Progress | None = None,
) -> IngestReport:
    """Make every item searchable with ``featurizer``'s model; cached vectors are reused."""
    sources = [ItemSource(item.item_id, images_dir / item.image_file) for item in store.items()]
    return add_items(
        store=store,
        featurizer=featurizer,
        sources=sources,
        images_dir=images_dir,
        recipe=recipe,
        progress=progress,
    )


def _prepare(
    source: ItemSource,
    store: CatalogStore,
    cache_key: tuple[str, str],
    images_dir: Path,
    report: IngestReport,
) -> _Pending | None:
    try:
        data = source.image_path.read_bytes()
    except OSError as exc:
        return _fail(report, source, f"cannot read: {exc.strerror or exc}")
    sha = hashlib.sha256(data).hexdigest()
    image_file = f"{sha[:2]}/{sha}{source.image_path.suffix.lower() or '.img'}"
    image = None
    needs_vectors = not store.cached_hashes(*cache_key, [sha])
    needs_keypoints = not store.has_local_features(local_features.METHOD_ID, sha)
    if needs_vectors or needs_keypoints:
        try:
            image = decode_image(data)
        except ImageDecodeError as exc:
            return _fail(report, source, str(exc))
    stored = images_dir / image_file
    if not stored.exists():
        stored.parent.mkdir(parents=True, exist_ok=True)
        staged = stored.with_suffix(".part")
        staged.write_bytes(data)
        staged.replace(stored)
    return _Pending(source, sha, image_file, image, needs_vectors, needs_keypoints)


def _fail(report: IngestReport, source: ItemSource, reason: str) -> None:
    logger.warning("skipping %s (%s): %s", source.image_path, source.item_id, reason)
    report.failed.append((str(source.image_path), reason))
    return None


def _commit(
    batch: list[_Pending],
    store: CatalogStore,
    featurizer: Featurizer,
    recipe: CatalogRecipe,
    report: IngestReport,
) -> None:
    # An image that appears twice in one batch (two ids, one photo) is run once.
    fresh: dict[str, np.ndarray] = {}
    keypoints: dict[str, local_features.LocalFeatures] = {}
    for pending in batch:
        if pending.needs_vectors:
            fresh.setdefault(pending.sha256, pending.image_bgr)
        if pending.needs_keypoints and pending.sha256 not in keypoints:
            keypoints[pending.sha256] = local_features.extract_local_features(pending.image_bgr)
    matrices = catalog_vectors(featurizer=featurizer, recipe=recipe, images=list(fresh.items()))
    report.featurized += len(fresh)
    report.cached += len(batch) - len(fresh)
    with store.transaction() as conn:
        for sha256, matrix in zip(fresh, matrices, strict=True):
            store.put_vectors(conn, sha256, featurizer.model_id, recipe.recipe_id, matrix)
        for sha256, features in keypoints.items():
            store.put_local_features(conn, sha256, local_features.METHOD_ID, features)
        for pending in batch:
            previous = _existing(store, pending.source.item_id)
            item = pending.source.to_item(
                previous, image_sha256=pending.sha256, image_file=pending.image_file
            )
            if previous == item:
                report.unchanged += 1
            elif store.upsert(conn, item):
                report.added += 1
            else:
                report.updated += 1


def _existing(store: CatalogStore, item_id: str) -> CatalogItem | None:
    try:
        return store.get(item_id)
    except ItemNotFoundError:
        return None
