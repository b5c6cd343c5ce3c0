"""Evaluate the featurizer + search on a catalog and labelled queries.

The catalog goes through the same featurizer and the same index the worker uses, and
each query is answered by the worker's own answer path (:mod:`edgelens.cloud.answer`),
stage one then, for a view, stage two, with its decision; so the figures describe the
product, not a side implementation.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgelens.catalog.augment import DEFAULT_RECIPE, CatalogRecipe, catalog_vectors
from edgelens.catalog.models import CatalogItem, ItemSource, PhotoOrigin, indexed_photos
from edgelens.cloud.answer import Answerer, AnswerPolicy
from edgelens.errors import EdgelensError, ImageDecodeError
from edgelens.evaluation.clutter import clutter_view
from edgelens.evaluation.metrics import RetrievalMetrics
from edgelens.featurizer.focus import decode_focus_view, focus_crop, focus_view_jpeg
from edgelens.featurizer.local_features import LocalFeatures, catalog_local_features
from edgelens.featurizer.preprocess import IMAGE_SUFFIXES, decode_image
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.views import camera_views
from edgelens.search.exact import ExactIndex
from edgelens.search.recall import RecalledViews
from edgelens.search.verify import PhotoKeypoints
from edgelens.settings import VIEW_BYTES, DeviceSettings, Settings
from edgelens.wire.features import FeatureMessage, WireDtype, decode, encode
from edgelens.wire.records import Decision

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]
# The name of a set's figures with the other catalog items in its frames left out.
IN_VIEW_IGNORED = "{}, in view ignored"


@dataclass(frozen=True)
class Query:
    """A labelled query image: its pixels held (``image_bgr``: a generated view), or its
    file (``path``), read only when answered (:meth:`image`), so a folder of thousands of
    photos is held a batch at a time. ``also_in_view`` names other catalog items the frame
    shows (clutter built from catalog photos): answering one of those is neither right nor
    wrong, so the "in view ignored" figures leave them out of the ranking, as the revisited
    Oxford/Paris protocol does with its "junk" images."""

    item_id: str
    image_bgr: np.ndarray | None
    origin: str
    also_in_view: frozenset[str] = frozenset()
    path: Path | None = None

    def image(self) -> np.ndarray:
        """The query's pixels (BGR): held, or decoded from its file now."""
        if self.image_bgr is not None:
            return self.image_bgr
        if self.path is None:
            raise ValueError(f"query {self.origin} has neither pixels nor a file")
        return decode_image(self.path)


@dataclass(frozen=True)
class CatalogPhoto:
    """A decoded catalog image with the metadata and hash an import would give it; an item
    with several photos appears once per photo, its first photo first."""

    item: CatalogItem
    sha256: str
    image_bgr: np.ndarray
    origin: PhotoOrigin = PhotoOrigin.IMPORT

    @functools.cached_property
    def pixels(self) -> str:
        """A digest of the decoded pixels and their shape, made once: what tells apart
        photos derived from others (pack shots) that keep their sha256."""
        image = np.ascontiguousarray(self.image_bgr)
        digest = hashlib.blake2b(str(image.shape).encode(), digest_size=16)
        digest.update(image.data)
        return digest.hexdigest()


# Vectors alone, every item ranked, no decision: what a plain system (the baseline) does.
VECTORS_ONLY = AnswerPolicy(top_k=1, view_focus=False, verify=False)


@dataclass(frozen=True)
class DeviceSends:
    """What a device sends with each query, as its settings say: the frame's vector over
    the wire in ``wire_dtype``, its focus box's vector too (``focus``), its focus view
    coded within ``view_bytes`` (``view``: a query is a settled view)."""

    view: bool = False
    focus: bool = False
    view_bytes: int = VIEW_BYTES
    wire_dtype: WireDtype = field(
        default_factory=lambda: WireDtype.parse(DeviceSettings().wire_dtype)
    )

    @classmethod
    def of(cls, device: DeviceSettings) -> DeviceSends:
        return cls(
            view=device.send_view,
            focus=device.focus,
            view_bytes=device.view_bytes,
            wire_dtype=WireDtype.parse(device.wire_dtype),
        )


VIEW_SENT = DeviceSends(view=True)


@dataclass(frozen=True)
class System:
    """A way of featurizing catalog and queries and answering them: a model, a catalog
    recipe, what the device sends and the worker's answer policy.

    ``catalog_featurizer`` lets a device's precision (queries) meet a catalog indexed
    with another (e.g. INT8 frames against an FP32 catalog).
    """

    name: str
    featurizer: Featurizer
    recipe: CatalogRecipe
    catalog_featurizer: Featurizer | None = None
    policy: AnswerPolicy = VECTORS_ONLY
    sends: DeviceSends = DeviceSends()

    @classmethod
    def product(
        cls, name: str, featurizer: Featurizer, settings: Settings, **changes: object
    ) -> System:
        """The system the settings describe: their device and their worker."""
        return cls(
            name,
            featurizer,
            CatalogRecipe(settings.catalog.views),
            policy=AnswerPolicy.from_settings(settings),
            sends=DeviceSends.of(settings.device),
            **changes,  # type: ignore[arg-type]
        )

    @property
    def focus(self) -> bool:
        """Each item scores its best of the frame and its focus boxes."""
        return self.sends.focus or (self.sends.view and self.policy.view_focus)

    @property
    def verify(self) -> bool:
        return self.sends.view and self.policy.verify


@dataclass(frozen=True)
class Ranked:
    """A query answered: the whole catalog ranked for it (item ids, best first), and the
    answer's decision."""

    query: Query
    ranked: list[str]
    decision: Decision = Decision.MATCH


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
    # Views of things not in the catalog, and the share of them answered "no match".
    unknown_queries: int = 0
    no_match_rate: float | None = None
    catalog_items: int = 0
    catalog_photos: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            **self.metrics.to_dict(),
            "unknown_queries": self.unknown_queries,
            "no_match_rate": self.no_match_rate,
            "set": self.set_name,
            "system": self.system,
            "model_id": self.model_id,
            "catalog_vectors": self.catalog_vectors,
            "catalog_items": self.catalog_items,
            "catalog_photos": self.catalog_photos,
            "focus": self.focus,
            "verify": self.verify,
        }


def load_catalog(sources: Sequence[ItemSource]) -> list[CatalogPhoto]:
    """Decode the catalog images, each item's photos in order; unreadable ones are logged
    and left out."""
    photos = []
    for source in sources:
        item = None
        for path in source.images:
            try:
                data = path.read_bytes()
                image = decode_image(data)
            except (OSError, ImageDecodeError) as exc:
                logger.warning("catalog image %s skipped: %s", path, exc)
                continue
            sha256 = hashlib.sha256(data).hexdigest()
            item = item or source.to_item(None, image_sha256=sha256, image_file=path.name)
            photos.append(CatalogPhoto(item, sha256, image))
    if not photos:
        raise EdgelensError("the evaluation catalog has no readable image")
    return photos


def cover_images(photos: Sequence[CatalogPhoto]) -> dict[str, np.ndarray]:
    """Each item's first photo, by item id: what generated views are made from."""
    covers: dict[str, np.ndarray] = {}
    for photo in photos:
        covers.setdefault(photo.item.item_id, photo.image_bgr)
    return covers


def photo_matrices(
    featurizer: Featurizer, photos: Sequence[CatalogPhoto], recipe: CatalogRecipe
) -> list[np.ndarray]:
    """Each photo's vector rows, as an import makes them (the recipe's views)."""
    return catalog_vectors(
        featurizer=featurizer, recipe=recipe, images=[(p.sha256, p.image_bgr) for p in photos]
    )


def catalog_index(
    featurizer: Featurizer,
    photos: Sequence[CatalogPhoto],
    *,
    recipe: CatalogRecipe = DEFAULT_RECIPE,
    matrices: Sequence[np.ndarray] | None = None,
) -> ExactIndex:
    """The catalog featurized as an import would, in an exact index: each item the rows of
    its indexed photos (:func:`indexed_photos`; ``matrices``, one per photo, when already
    made)."""
    if matrices is None:
        matrices = photo_matrices(featurizer, photos, recipe)
    rows: dict[str, list[tuple[PhotoOrigin, np.ndarray]]] = {}
    items: dict[str, CatalogItem] = {}
    for photo, matrix in zip(photos, matrices, strict=True):
        items.setdefault(photo.item.item_id, photo.item)
        rows.setdefault(photo.item.item_id, []).append((photo.origin, matrix))
    index = ExactIndex(featurizer.model_id, featurizer.dim)
    index.upsert(list(items.values()), [np.concatenate(indexed_photos(rows[i])) for i in items])
    return index


def evaluate_systems(
    systems: Sequence[System],
    photos: Sequence[CatalogPhoto],
    query_sets: dict[str, list[Query]],
    progress: Progress | None = None,
    *,
    unknown: Sequence[Query] = (),
    cache: CatalogCache | None = None,
) -> list[SetResult]:
    """Every system on every query set, on the same catalog and the same queries; with
    ``unknown`` views (of things not in the catalog), each row also gets the share of
    them its system answers "no match". Systems share what they can of the catalog's
    featurizing (``cache``, e.g. one for several calls on the same photos)."""
    results = []
    cache = cache if cache is not None else CatalogCache()
    items = len({p.item.item_id for p in photos})
    for system in systems:
        answerer = system_answerer(system, photos, cache)
        index = answerer.index
        ranked = functools.partial(
            rank_queries,
            system.featurizer,
            answerer,
            progress=progress,
            sends=system.sends,
        )
        no_match_rate = None
        if unknown:
            answers = ranked(unknown, known=False)
            no_match_rate = sum(a.decision is Decision.NO_MATCH for a in answers) / len(answers)
        for set_name, queries in query_sets.items():
            rankings = ranked(queries)
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
                    len(unknown),
                    no_match_rate,
                    items,
                    len(photos),
                )
                for name, ignore_in_view in scored
            ]
    return results


@dataclass
class CatalogCache:
    """What systems answering over the same catalog photos share, each made once: the
    photos' vector rows (by model, recipe and photos) and their keypoints (by photo). A
    photo is known by its pixels, not its sha256: a set's photos may be derived from
    another's (pack shots of the same photos) and keep their hashes."""

    matrices: dict[tuple[str, str, tuple[str, ...]], list[np.ndarray]] = field(default_factory=dict)
    keypoints: dict[str, LocalFeatures] = field(default_factory=dict)

    def photo_matrices(
        self, featurizer: Featurizer, photos: Sequence[CatalogPhoto], recipe: CatalogRecipe
    ) -> list[np.ndarray]:
        """:func:`photo_matrices`, made once for a model, a recipe and the same photos."""
        key = (featurizer.model_id, recipe.recipe_id, tuple(p.pixels for p in photos))
        if key not in self.matrices:
            self.matrices[key] = photo_matrices(featurizer, photos, recipe)
        return self.matrices[key]

    def local_features(self, photo: CatalogPhoto) -> LocalFeatures:
        """The photo's keypoints, as the catalog stores them."""
        if photo.pixels not in self.keypoints:
            self.keypoints[photo.pixels] = catalog_local_features(photo.image_bgr)
        return self.keypoints[photo.pixels]


def system_answerer(
    system: System,
    photos: Sequence[CatalogPhoto],
    cache: CatalogCache,
    *,
    corrected: RecalledViews | None = None,
    corrections_verified: bool = False,
) -> Answerer:
    """``system``'s worker over the catalog ``photos``: their index and, when it verifies,
    their keypoints, each photo's with its vector rows, as the worker's keypoint cache
    holds them (both from ``cache``, shared by the systems over these photos); and the
    views people ``corrected``, as the worker remembers them. ``corrections_verified``: the
    photos corrections gave are verified too (the product before it remembered views: a
    baseline)."""
    worker_model = system.catalog_featurizer or system.featurizer
    matrices = cache.photo_matrices(worker_model, photos, system.recipe)
    index = catalog_index(worker_model, photos, recipe=system.recipe, matrices=matrices)
    held: dict[str, list[PhotoKeypoints]] = {}
    if system.verify:
        searched: dict[str, list[tuple[PhotoOrigin, tuple[CatalogPhoto, np.ndarray]]]] = {}
        for photo, matrix in zip(photos, matrices, strict=True):
            origin = PhotoOrigin.ADDED if corrections_verified else photo.origin
            searched.setdefault(photo.item.item_id, []).append((origin, (photo, matrix)))
        for item_id, item_photos in searched.items():
            for photo, matrix in indexed_photos(item_photos):
                features = cache.local_features(photo)
                held.setdefault(item_id, []).append(PhotoKeypoints(features, matrix))
    return Answerer(
        index=index,
        policy=system.policy,
        embed_view=worker_model.embed,
        keypoints_of=functools.partial(_held, held),
        recall=None if corrected is None else lambda: corrected,
    )


def _held(
    held: dict[str, list[PhotoKeypoints]], item_ids: Sequence[str]
) -> dict[str, list[PhotoKeypoints]]:
    return {item_id: held[item_id] for item_id in item_ids if item_id in held}


def folder_queries(queries_dir: Path) -> list[Query]:
    """Queries laid out as ``<queries_dir>/<item_id>/*`` (an image-folder dataset)."""
    return _file_queries(sorted(queries_dir.glob("*/*")), lambda path: path.parent.name, "query")


def unlabelled_queries(folder: Path) -> list[Query]:
    """Every image under ``folder`` (any layout), as queries of no catalog item: views of
    things the catalog does not hold."""
    return _file_queries(sorted(folder.rglob("*")), lambda _: "", "unknown view")


def _file_queries(paths: Iterable[Path], item_of: Callable[[Path], str], what: str) -> list[Query]:
    """The image files among ``paths`` as queries that hold no pixels (:meth:`Query.image`
    reads them when answered); each decoded once now, so a file that is not an image is
    said and left out here rather than failing a run half-way."""
    queries = []
    for path in paths:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            decode_image(path)
        except ImageDecodeError as exc:
            logger.warning("%s skipped: %s", what, exc)
            continue
        queries.append(Query(item_of(path), None, str(path), path=path))
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


def metrics_of(rankings: Sequence[Ranked], ignore_in_view: bool = False) -> RetrievalMetrics:
    """Metrics from the rank of each query's own item and its answer's decision (a known
    item answered "no match" is not right at top-1); with ``ignore_in_view`` the other
    catalog items its frame shows are first taken out of its ranking."""
    return RetrievalMetrics.from_ranks(
        [_judged(r, ignore_in_view).index(r.query.item_id) + 1 for r in rankings],
        answered=[r.decision is Decision.MATCH for r in rankings],
    )


def misses_of(
    rankings: Sequence[Ranked], ignore_in_view: bool = False, answered: int = 3
) -> tuple[Miss, ...]:
    """The queries of :func:`metrics_of` whose own item is not first, or that were
    answered "no match" (rank 0), in query order, each with the first ``answered`` items
    it got instead."""
    misses = []
    for r in rankings:
        judged = _judged(r, ignore_in_view)
        rank = judged.index(r.query.item_id) + 1
        if r.decision is Decision.NO_MATCH:
            misses.append(Miss(r.query.origin, r.query.item_id, 0, ("no match",)))
        elif rank > 1:
            instead = tuple(judged[: min(answered, rank - 1)])
            misses.append(Miss(r.query.origin, r.query.item_id, rank, instead))
    return tuple(misses)


def _judged(answer: Ranked, ignore_in_view: bool) -> list[str]:
    """The ranking a query is judged on: with ``ignore_in_view``, without the other
    catalog items its frame shows."""
    if not ignore_in_view:
        return answer.ranked
    return [item_id for item_id in answer.ranked if item_id not in answer.query.also_in_view]


@dataclass(frozen=True)
class Sent:
    """A query as the device sends it: its vectors, and its focus view decoded as on the
    wire (None when the device sends none)."""

    query: Query
    vectors: list[np.ndarray]
    view: np.ndarray | None


def sent_queries(
    featurizer: Featurizer,
    queries: Sequence[Query],
    progress: Progress | None = None,
    *,
    sends: DeviceSends = DeviceSends(),
) -> Iterator[Sent]:
    """Each query as a device ``sends`` it, through the wire format: the frame's vector
    from ``featurizer`` (the device's model), its focus box's too, its focus view
    JPEG-coded; all decoded as the worker decodes them."""
    for start in range(0, len(queries), featurizer.batch_size):
        chunk = queries[start : start + featurizer.batch_size]
        images = [q.image() for q in chunk]  # a batch at a time: files are read here
        frames = featurizer.embed(images)
        boxes = featurizer.embed([focus_crop(image) for image in images]) if sends.focus else None
        for n, query in enumerate(chunk):
            sent = FeatureMessage(
                device_id="eval",
                seq=0,
                captured_at=0.0,
                model_id=featurizer.model_id,
                embedding=frames[n],
                focus_embedding=None if boxes is None else boxes[n],
                view_jpeg=(focus_view_jpeg(images[n], sends.view_bytes) if sends.view else None),
            )
            received = decode(encode(sent, sends.wire_dtype))
            view = None if received.view_jpeg is None else decode_focus_view(received.view_jpeg)
            yield Sent(query, received.views, view)
        if progress:
            progress(len(chunk))


def rank_queries(
    featurizer: Featurizer,
    answerer: Answerer,
    queries: Iterable[Query],
    progress: Progress | None = None,
    *,
    sends: DeviceSends = DeviceSends(),
    known: bool = True,
) -> list[Ranked]:
    """Each query as a device sends it (:func:`sent_queries`), answered by ``answerer``'s
    two stages over the whole catalog. ``known`` queries must name catalog items; unknown
    ones (things not in the catalog) need not."""
    queries = list(queries)
    index = answerer.index
    missing = sorted({q.item_id for q in queries if q.item_id not in index}) if known else []
    if missing:
        raise EdgelensError(f"queries name items missing from the catalog: {missing[:10]}")
    rankings = []
    for sent in sent_queries(featurizer, queries, progress, sends=sends):
        answer = answerer.answer(sent.vectors, sent.view, k=len(index))
        rankings.append(Ranked(sent.query, [m.item_id for m in answer.matches], answer.decision))
    return rankings
