"""Import and re-index: featurize only images whose (sha256, model id, recipe) is not cached.

Each image's keypoints for spatial verification are extracted once too, by (sha256, method),
in the form the catalog stores (:func:`edgelens.featurizer.local_features.catalog_local_features`);
:func:`migrate_keypoints` re-makes those of an earlier method.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelens.catalog.augment import DEFAULT_RECIPE, CatalogRecipe, catalog_vectors
from edgelens.catalog.images import SNIFF_BYTES, image_type, read_image_file
from edgelens.catalog.models import (
    ITEM_ID_PATTERN,
    ITEM_ID_RULE,
    IngestReport,
    ItemSource,
    PhotoOrigin,
)
from edgelens.catalog.store import CatalogStore, CatalogWrite
from edgelens.errors import CatalogError, ImageDecodeError
from edgelens.featurizer import local_features
from edgelens.featurizer.preprocess import decode_image
from edgelens.featurizer.runtime import Featurizer

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]  # called with the number of sources just handled


@dataclass
class _Image:
    sha256: str
    image_file: str
    image_bgr: np.ndarray | None  # None when vectors and keypoints are both cached
    needs_vectors: bool
    needs_keypoints: bool


@dataclass
class _Pending:
    source: ItemSource
    images: list[_Image]


def add_items(
    *,
    store: CatalogStore,
    featurizer: Featurizer,
    sources: Sequence[ItemSource],
    images_dir: Path,
    recipe: CatalogRecipe = DEFAULT_RECIPE,
    progress: Progress | None = None,
) -> IngestReport:
    """Add or update items with their photos; a corrupt or unreadable image is reported
    and skipped (its item keeps the photos that could be read; with none, it is skipped)."""
    report = IngestReport()
    batch: list[_Pending] = []
    cache_key = (featurizer.model_id, recipe.recipe_id)
    for source in sources:
        pending = _prepare(source, store, cache_key, images_dir, report)
        if pending is not None:
            batch.append(pending)
        if sum(len(p.images) for p in batch) >= max(1, featurizer.batch_size // recipe.views):
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
    sources = [
        ItemSource(
            item.item_id,
            tuple(images_dir / p.image_file for p in store.photos(item.item_id)),
            origin=PhotoOrigin.ADDED,  # the photos it has: nothing replaced
        )
        for item in store.items()
    ]
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
    if not ITEM_ID_PATTERN.match(source.item_id):
        for path in source.images:
            _fail(report, source, path, f"item id {source.item_id!r}: {ITEM_ID_RULE}")
        return None
    images = {}
    for path in source.images:
        image = _prepare_image(source, path, store, cache_key, images_dir, report)
        if image is not None:
            images.setdefault(image.sha256, image)  # one photo given twice is one photo
    return _Pending(source, list(images.values())) if images else None


def _prepare_image(
    source: ItemSource,
    path: Path,
    store: CatalogStore,
    cache_key: tuple[str, str],
    images_dir: Path,
    report: IngestReport,
) -> _Image | None:
    try:
        data = read_image_file(path)
        kind = image_type(data[:SNIFF_BYTES])
    except OSError as exc:
        return _fail(report, source, path, f"cannot read: {exc.strerror or exc}")
    except ImageDecodeError as exc:
        return _fail(report, source, path, str(exc))
    sha = hashlib.sha256(data).hexdigest()
    image_file = f"{sha[:2]}/{sha}{kind.suffix}"
    image = None
    needs_vectors = not store.cached_hashes(*cache_key, [sha])
    needs_keypoints = not store.has_local_features(local_features.METHOD_ID, sha)
    if needs_vectors or needs_keypoints:
        try:
            image = decode_image(data)
        except ImageDecodeError as exc:
            return _fail(report, source, path, str(exc))
    stored = images_dir / image_file
    if not stored.exists():
        stored.parent.mkdir(parents=True, exist_ok=True)
        staged = stored.with_suffix(".part")
        staged.write_bytes(data)
        staged.replace(stored)
    return _Image(sha, image_file, image, needs_vectors, needs_keypoints)


def _fail(report: IngestReport, source: ItemSource, path: Path, reason: str) -> None:
    logger.warning("skipping %s (%s): %s", path, source.item_id, reason)
    report.failed.append((str(path), reason))
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
    images = [image for pending in batch for image in pending.images]
    for image in images:
        if image.needs_vectors:
            fresh.setdefault(image.sha256, image.image_bgr)
        if image.needs_keypoints and image.sha256 not in keypoints:
            keypoints[image.sha256] = local_features.catalog_local_features(image.image_bgr)
    matrices = catalog_vectors(featurizer=featurizer, recipe=recipe, images=list(fresh.items()))
    report.featurized += len(fresh)
    report.cached += len(images) - len(fresh)
    with store.transaction() as write:
        for sha256, matrix in zip(fresh, matrices, strict=True):
            write.put_vectors(sha256, featurizer.model_id, recipe.recipe_id, matrix)
        for sha256, features in keypoints.items():
            write.put_local_features(sha256, local_features.METHOD_ID, features)
        for pending in batch:
            _commit_item(write, pending, report)


def _commit_item(write: CatalogWrite, pending: _Pending, report: IngestReport) -> None:
    source = pending.source
    try:
        cover, photos_changed = write.put_photos(
            source.item_id, [(i.sha256, i.image_file) for i in pending.images], source.origin
        )
    except CatalogError as exc:
        for path in source.images:
            _fail(report, source, path, str(exc))
        return
    previous = write.get(source.item_id)
    item = source.to_item(previous, image_sha256=cover.image_sha256, image_file=cover.image_file)
    if previous == item and not photos_changed:
        report.unchanged += 1
    elif write.upsert(item):
        report.added += 1
    else:
        report.updated += 1


@dataclass
class KeypointMigration:
    """What :func:`migrate_keypoints` did, photo by photo."""

    old_method: str
    method: str
    old_rows: int = 0  # photos with keypoints of the old method, before
    rows_before: int = 0  # photos with keypoints of the new method, before
    from_images: int = 0  # re-extracted from the stored image
    from_rows: int = 0  # converted from the old row (image missing or unreadable)
    already: int = 0  # had the new method's keypoints already (a later import)
    old_rows_left: int = 0  # after; 0 unless another process wrote the old method meanwhile
    rows_after: int = 0

    @property
    def made(self) -> int:
        return self.from_images + self.from_rows


def migrate_keypoints(
    *,
    store: CatalogStore,
    images_dir: Path,
    old_method: str = local_features.LEGACY_METHOD_ID,
    batch: int = 100,
    progress: Progress | None = None,
) -> KeypointMigration:
    """Replace every photo's keypoints of an earlier method (one of
    :data:`EARLIER_METHOD_IDS`) with the current method's.

    Each photo's keypoints are re-extracted from its stored image, as an import of it would
    make them: old rows lack what the current method selects by (keypoint size, the photo's
    own size), so they cannot simply be converted. A photo whose image file is missing or
    unreadable keeps its old row's keypoints instead: a legacy row's first
    CATALOG_KEYPOINTS keypoints in stored order (SIFT's order, which follows neither
    strength nor size), coded; a compact row's as they are. Each batch of
    photos is one transaction (new rows in, old rows out, a change logged for their items),
    so an interrupted migration resumes where it stopped. The counts before and after are
    checked: every old row gone, one new row for each photo that lacked one.
    """
    if old_method not in local_features.EARLIER_METHOD_IDS:
        raise CatalogError(f"no migration from keypoint method {old_method!r}")
    method = local_features.METHOD_ID
    counts = store.local_features_counts()
    report = KeypointMigration(old_method, method, counts.get(old_method, 0), counts.get(method, 0))
    after = ""
    while rows := store.local_features_rows(old_method, after=after, limit=batch):
        after = rows[-1][0]
        files = store.image_files([sha for sha, _, _ in rows])
        made: dict[str, local_features.LocalFeatures | None] = {}
        for sha, xy, descriptors in rows:
            if store.has_local_features(method, sha):
                report.already += 1
                made[sha] = None
                continue
            features = _from_image(images_dir, sha, files.get(sha))
            if features is None:
                features = _from_old_row(old_method, xy, descriptors)
                report.from_rows += 1
            else:
                report.from_images += 1
            made[sha] = features
        with store.transaction() as write:
            for sha, features in made.items():
                write.replace_local_features(sha, old_method, method, features)
        if progress:
            progress(len(rows))
    counts = store.local_features_counts()
    report.old_rows_left, report.rows_after = counts.get(old_method, 0), counts.get(method, 0)
    if report.rows_after != report.rows_before + report.made or report.old_rows_left:
        raise CatalogError(
            f"keypoint migration does not add up: {report.old_rows} rows of {old_method} "
            f"before, {report.old_rows_left} left; {report.rows_before} of {method} before, "
            f"{report.made} made, {report.rows_after} after"
        )
    return report


def _from_image(
    images_dir: Path, sha: str, image_file: str | None
) -> local_features.LocalFeatures | None:
    """The photo's keypoints from its stored image, or None when it is gone or unreadable
    (its file no item names any more is looked for by its hash)."""
    if image_file is None:
        candidates = sorted((images_dir / sha[:2]).glob(f"{sha}.*"))
        candidates = [p for p in candidates if p.suffix != ".part"]
        if not candidates:
            logger.warning("no stored image for %s; converting its stored keypoints", sha)
            return None
        path = candidates[0]
    else:
        path = images_dir / image_file
    try:
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            raise ImageDecodeError(f"{path} is not the image stored as {sha}")
        image = decode_image(data)
    except (OSError, ImageDecodeError) as exc:
        logger.warning("cannot re-read %s (%s); converting its stored keypoints", sha, exc)
        return None
    return local_features.catalog_local_features(image)


def _from_old_row(method: str, xy: bytes, descriptors: bytes) -> local_features.LocalFeatures:
    if method != local_features.LEGACY_METHOD_ID:  # the compact form: the same blobs
        return local_features.LocalFeatures.from_blobs(xy, descriptors)
    old = local_features.legacy_from_blobs(xy, descriptors)
    kept = min(len(old), local_features.CATALOG_KEYPOINTS)
    first = local_features.LocalFeatures(old.xy_n2[:kept], old.descriptors_n128[:kept])
    return local_features.LocalFeatures.from_blobs(*first.to_blobs())
