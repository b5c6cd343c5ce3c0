"""Evaluate the featurizer + search on a catalog and labelled queries.

The catalog goes through the same featurizer and the same index the worker uses,
so the figures describe the product, not a side implementation.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelens.catalog.augment import DEFAULT_RECIPE, CatalogRecipe, catalog_vectors
from edgelens.catalog.models import CatalogItem, ItemSource
from edgelens.errors import EdgelensError, ImageDecodeError
from edgelens.evaluation.clutter import clutter_view
from edgelens.evaluation.metrics import RetrievalMetrics
from edgelens.evaluation.views import camera_views
from edgelens.featurizer.focus import decode_focus_view, focus_view_jpeg, focus_views
from edgelens.featurizer.local_features import LocalFeatures, extract_local_features
from edgelens.featurizer.preprocess import IMAGE_SUFFIXES, decode_image
from edgelens.featurizer.runtime import Featurizer
from edgelens.search.base import search_views
from edgelens.search.exact import ExactIndex
from edgelens.search.verify import CANDIDATES, PLANES, verify_view
from edgelens.wire.features import MAX_JPEG_BYTES

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]
# The name of a set's figures with the other catalog items in its frames left out.
IN_VIEW_IGNORED = "{}, in view ignored"


@dataclass(frozen=True)
class Query:
    """A labelled query image. ``also_in_view`` names other catalog items the frame shows
    (clutter built from catalog photos): answering one of those is neither right nor wrong,
    so the "in view ignored" figures leave them out of the ranking, as the revisited
    Oxford/Paris protocol does with its "junk" images."""

    item_id: str
    image_bgr: np.ndarray
    origin: str
    also_in_view: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CatalogPhoto:
    """A decoded catalog image with the metadata and hash an import would give it."""

    item: CatalogItem
    sha256: str
    image_bgr: np.ndarray


@dataclass(frozen=True)
class System:
    """A way of featurizing catalog and queries: a model plus a catalog recipe.

    ``catalog_featurizer`` lets a device's precision (queries) meet a catalog indexed
    with another (e.g. INT8 frames against an FP32 catalog).
    """

    name: str
    featurizer: Featurizer
    recipe: CatalogRecipe
    catalog_featurizer: Featurizer | None = None
    focus: bool = False  # each item scores its best of the frame and its focus view's boxes
    verify: bool = False  # the worker re-ranks the best by the focus view's keypoints
    verify_candidates: int = CANDIDATES  # how many of the best it re-ranks
    verify_planes: int = PLANES  # how many homographies each candidate's inliers may fill


@dataclass(frozen=True)
class Miss:
    """A query whose own item was not answered first: what to look at to see why."""

    origin: str  # the query image's path or how it was made
    item_id: str
    rank: int  # of its own item, 1-based
    answered: tuple[str, ...]  # the first items answered instead, best first


@dataclass(frozen=True)
class SetResult:
    system: str
    set_name: str
    model_id: str
    catalog_vectors: int
    metrics: RetrievalMetrics
    focus: bool = False
    verify: bool = False
    misses: tuple[Miss, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            **self.metrics.to_dict(),
            "set": self.set_name,
            "system": self.system,
            "model_id": self.model_id,
            "catalog_vectors": self.catalog_vectors,
            "focus": self.focus,
            "verify": self.verify,
        }


def load_catalog(sources: Sequence[ItemSource]) -> list[CatalogPhoto]:
    """Decode the catalog images; unreadable ones are logged and left out."""
    photos = []
    for source in sources:
        try:
            data = source.image_path.read_bytes()
            image = decode_image(data)
        except (OSError, ImageDecodeError) as exc:
            logger.warning("catalog image %s skipped: %s", source.image_path, exc)
            continue
        sha256 = hashlib.sha256(data).hexdigest()
        item = source.to_item(None, image_sha256=sha256, image_file=source.image_path.name)
        photos.append(CatalogPhoto(item, sha256, image))
    if not photos:
        raise EdgelensError("the evaluation catalog has no readable image")
    return photos


def catalog_index(
    featurizer: Featurizer,
    photos: Sequence[CatalogPhoto],
    *,
    recipe: CatalogRecipe = DEFAULT_RECIPE,
) -> ExactIndex:
    """The catalog featurized as an import would (the recipe's views), in an exact index."""
    matrices = catalog_vectors(
        featurizer=featurizer, recipe=recipe, images=[(p.sha256, p.image_bgr) for p in photos]
    )
    index = ExactIndex(featurizer.model_id, featurizer.dim)
    index.upsert([p.item for p in photos], matrices)
    return index


def evaluate_systems(
    systems: Sequence[System],
    photos: Sequence[CatalogPhoto],
    query_sets: dict[str, list[Query]],
    progress: Progress | None = None,
) -> list[SetResult]:
    """Every system on every query set, on the same catalog and the same queries."""
    results = []
    keypoints: dict[str, LocalFeatures] = {}  # extracted once, for the systems that verify
    for system in systems:
        worker_model = system.catalog_featurizer or system.featurizer
        index = catalog_index(worker_model, photos, recipe=system.recipe)
        if system.verify and not keypoints:
            keypoints = {p.item.item_id: extract_local_features(p.image_bgr) for p in photos}
        for set_name, queries in query_sets.items():
            rankings = rank_queries(
                system.featurizer,
                index,
                queries,
                progress,
                focus=system.focus,
                view_featurizer=worker_model,
                local_features_of=keypoints.get if system.verify else None,
                verify_candidates=system.verify_candidates,
                verify_planes=system.verify_planes,
            )
            scored = [(set_name, False)]
            if any(q.also_in_view for q in queries):
                scored.append((IN_VIEW_IGNORED.format(set_name), True))
            results += [
                SetResult(
                    system.name,
                    name,
                    index.model_id,
                    index.vector_count,
                    metrics_of(rankings, ignore_in_view),
                    system.focus,
                    system.verify,
                    misses_of(rankings, ignore_in_view),
                )
                for name, ignore_in_view in scored
            ]
    return results


def folder_queries(queries_dir: Path) -> list[Query]:
    """Queries laid out as ``<queries_dir>/<item_id>/*`` (an image-folder dataset)."""
    queries = []
    for path in sorted(queries_dir.glob("*/*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            queries.append(Query(path.parent.name, decode_image(path), str(path)))
        except ImageDecodeError as exc:
            logger.warning("query skipped: %s", exc)
    return queries


def folder_photos(folder: Path) -> list[np.ndarray]:
    """The images of a folder (by name), decoded as BGR; e.g. photos to build clutter from."""
    return [
        decode_image(path)
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]


def synthetic_queries(
    images: dict[str, np.ndarray], views_per_image: int, seed: int
) -> list[Query]:
    """Seeded camera-like views of each catalog image (seed mixed with the item id)."""
    queries = []
    for item_id, image in sorted(images.items()):
        for n, view in enumerate(camera_views(image, views_per_image, _item_seed(seed, item_id))):
            queries.append(Query(item_id, view, f"synthetic:{item_id}:{n}"))
    return queries


def clutter_queries(
    images: dict[str, np.ndarray],
    views_per_image: int,
    seed: int,
    *,
    backgrounds: Sequence[np.ndarray] | None = None,
) -> list[Query]:
    """Each catalog item at 15-40% of a frame built from the *other* catalog photos (other
    items in view, as on a shelf; each query names them in ``also_in_view``) or, given
    ``backgrounds``, from those photos (things that are not in the catalog)."""
    queries = []
    for item_id, image in sorted(images.items()):
        other_ids = [] if backgrounds else [i for i in sorted(images) if i != item_id]
        others = backgrounds or [images[i] for i in other_ids]
        rng = np.random.default_rng(_item_seed(seed, item_id))
        for n in range(views_per_image):
            view = clutter_view(image, others, rng)
            in_view = frozenset(other_ids[i] for i in view.background_indexes if other_ids)
            queries.append(Query(item_id, view.image_bgr, f"clutter:{item_id}:{n}", in_view))
    return queries


def _item_seed(seed: int, item_id: str) -> int:
    return seed + int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16)


def metrics_of(
    rankings: Sequence[tuple[Query, list[str]]], ignore_in_view: bool = False
) -> RetrievalMetrics:
    """Metrics from the rank of each query's own item; with ``ignore_in_view`` the other
    catalog items its frame shows are first taken out of its ranking."""
    ranks = [
        _judged(query, ranked, ignore_in_view).index(query.item_id) + 1
        for query, ranked in rankings
    ]
    return RetrievalMetrics.from_ranks(ranks)


def misses_of(
    rankings: Sequence[tuple[Query, list[str]]],
    ignore_in_view: bool = False,
    answered: int = 3,
) -> tuple[Miss, ...]:
    """The queries of :func:`metrics_of` whose own item is not first, in query order, each
    with the first ``answered`` items it got instead."""
    misses = []
    for query, ranked in rankings:
        judged = _judged(query, ranked, ignore_in_view)
        rank = judged.index(query.item_id) + 1
        if rank > 1:
            misses.append(
                Miss(query.origin, query.item_id, rank, tuple(judged[: min(answered, rank - 1)]))
            )
    return tuple(misses)


def _judged(query: Query, ranked: list[str], ignore_in_view: bool) -> list[str]:
    """The ranking a query is judged on: with ``ignore_in_view``, without the other
    catalog items its frame shows."""
    if not ignore_in_view:
        return ranked
    return [item_id for item_id in ranked if item_id not in query.also_in_view]


def rank_queries(
    featurizer: Featurizer,
    index: ExactIndex,
    queries: Iterable[Query],
    progress: Progress | None = None,
    *,
    focus: bool = False,
    view_featurizer: Featurizer | None = None,
    local_features_of: Callable[[str], LocalFeatures | None] | None = None,
    verify_candidates: int = CANDIDATES,
    verify_planes: int = PLANES,
) -> list[tuple[Query, list[str]]]:
    """Each query with the whole catalog ranked for it (item ids, best first), as a device
    sends it and the worker answers it: the frame's vector from ``featurizer`` (the
    device's model); with ``focus`` also the vectors of its focus view's boxes, the view
    JPEG-coded and decoded as on the wire and featurized by ``view_featurizer`` (the
    catalog's model, as on the worker; ``featurizer`` when None), each item scoring its
    best; with ``local_features_of`` (the catalog's keypoints) its best candidates verified
    from that view."""
    queries = list(queries)
    unknown = sorted({q.item_id for q in queries if q.item_id not in index})
    if unknown:
        raise EdgelensError(f"queries name items missing from the catalog: {unknown[:10]}")
    rankings = []
    batch_size, dim = featurizer.batch_size, featurizer.dim
    for start in range(0, len(queries), batch_size):
        chunk = queries[start : start + batch_size]
        vectors = [featurizer.embed([q.image_bgr for q in chunk])]
        views = (
            [decode_focus_view(focus_view_jpeg(q.image_bgr, MAX_JPEG_BYTES)) for q in chunk]
            if focus or local_features_of is not None
            else []
        )
        if focus:  # the worker's focus vectors: each view's boxes, one batch
            boxes = [box for view in views for box in focus_views(view)]
            per_view = (view_featurizer or featurizer).embed(boxes).reshape(len(chunk), -1, dim)
            vectors += list(per_view.transpose(1, 0, 2))
        for n, query in enumerate(chunk):
            found = search_views(index, [v[n] for v in vectors], k=len(index))
            if local_features_of is not None:
                found = verify_view(
                    found,
                    views[n],
                    local_features_of,
                    candidates=verify_candidates,
                    planes=verify_planes,
                )
            rankings.append((query, [m.item_id for m in found]))
        if progress:
            progress(len(chunk))
    return rankings
