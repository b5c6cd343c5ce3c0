"""Several photos per item, and corrections: what they do to the answer, side by side.

Every figure comes from the worker's own answer path (edgelens.cloud.answer through
edgelens.evaluation.runner), the product as its settings describe it (FP32):
- corrections: each query answered wrongly (another item first, or "no match") is
  corrected to its own item as the device page does (edgelens.evaluation.corrections): its
  view, as the device sent it, becomes a photo of the item and a view the workers
  remember; each of the two alone is measured beside it; then the same queries are answered
  again, and, where the set can make them, new views of the same items (another seed);
- several photos: half the sample items (every other id) get a second photo, one view of
  the item in clutter under another light (a stand-in for a photo taken on the shelf),
  never one of the queries; the item-in-clutter queries are answered with and without it;
- the real-view set's items that have more than one real second photo: the first becomes
  a second catalog photo, the others are answered with and without it.
"""

from __future__ import annotations

import argparse
import functools
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.common import common_arguments, p50_p99, publish
from edgelens.catalog.models import PhotoOrigin
from edgelens.catalog.sources import collect_sources
from edgelens.cloud.answer import Answerer
from edgelens.cloud.recall import view_rows
from edgelens.evaluation.clutter import clutter_view
from edgelens.evaluation.corrections import (
    added_photo,
    answered_wrongly,
    corrected_views,
    correction_photos,
)
from edgelens.evaluation.real_views import fetch_real_views, real_view_query_sets
from edgelens.evaluation.runner import (
    CatalogCache,
    CatalogPhoto,
    Query,
    Ranked,
    System,
    clutter_queries,
    cover_images,
    load_catalog,
    rank_queries,
    sent_queries,
    system_answerer,
)
from edgelens.evaluation.variants import variant_suite
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import write_sample_catalog
from edgelens.search.recall import RecalledViews
from edgelens.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clutter", type=int, default=10, help="clutter views per photo")
    parser.add_argument("--variant-views", type=int, default=4, help="views per variant item")
    parser.add_argument("--seed", type=int, default=1000)
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    featurizer = Featurizer.from_models_dir(args.models_dir, "fp32", "rgem", providers=["cpu"])
    system = System.product("edgelens FP32", featurizer, Settings())
    with tempfile.TemporaryDirectory() as tmp:
        photos = load_catalog(collect_sources([write_sample_catalog(Path(tmp) / "samples")]))
    images = cover_images(photos)
    real_set = fetch_real_views(args.models_dir.parent / "real-views")
    backgrounds = real_set.backgrounds()
    real_photos = load_catalog(collect_sources([real_set.catalog_dir]))
    real_queries = real_view_query_sets(real_set)["real views"]
    variant_photos, variant_sets = variant_suite(photos, args.variant_views, args.seed)
    _, fresh_variants = variant_suite(photos, args.variant_views, args.seed + 7)

    def clutter(seed: int) -> list[Query]:
        return clutter_queries(images, args.clutter, seed, backgrounds=backgrounds)

    corrections = [
        _corrected(system, "real views", real_photos, real_queries, None),
        _corrected(
            system,
            "clutter, other photos",
            photos,
            clutter(args.seed + 2),
            clutter(args.seed + 9),
        ),
        _corrected(
            system, "variants", variant_photos, variant_sets["variants"], fresh_variants["variants"]
        ),
    ]
    cost, per_view_ms = _recall_cost(system, photos, clutter(args.seed + 2))
    shop = _shop_photos(photos, backgrounds, args.seed + 50)
    several = _with_photos(system, photos, shop, clutter(args.seed + 2))
    real_second, real_rest = _real_second_photos(real_photos, real_queries)
    real_several = _with_photos(system, real_photos, real_second, real_rest)

    lines = [
        "Corrections: each query answered wrongly is corrected to its own item (a "
        "correction on the device page), and the same queries are answered again, and new "
        "views of the same items where the set makes them (another seed). The product "
        "remembers the corrected view (edgelens.cloud.recall: the frame's vectors as the "
        "device sent them and its view featurized as stage two does; a query within 0.95 "
        "cosine of them gets the corrected answer); the view also becomes a photo of the "
        "item, cut out on white by the saliency model (edgelens.catalog.isolate), which the "
        "answer does not search (`edgelens.catalog.models.indexed_photos`). Before, that "
        "photo was verified in stage two: measured here beside it, cut out and whole (at "
        "most 8 photos an item; a correction gave the index no rows either way). "
        "'A moment later': the corrected views again with the camera moved by up to 1% of "
        "the frame, the light by up to 5% and new sensor noise. 'Others' are the queries "
        "that were right before: the share still right after.",
        "",
        "| set | how a correction acts | queries | wrong before | photos added | vectors "
        "remembered | the same views right after | a moment later | others still right | set "
        "top-1 before → after | new views top-1 before → after | index rows before → after |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: | :---: | :---: |",
        *corrections,
        "",
        "What remembering corrections costs the worker: stage one's CPU time per message "
        "(the sample catalog's index, the clutter queries as the device sends them, each "
        "answered three times) with corrections remembered, three vectors each (random ones, "
        "below the bar for every query: none recalled; stage one compares the frame's own, "
        "stage two all three), and the memory "
        "they hold (`search.corrected_views`: the newest 1,000 by default). Nothing changes "
        "on the wire. A worker featurizes each correction's view once, when it first sees "
        f"it: {per_view_ms:.1f} ms a view here (in its catalog follower's thread).",
        "",
        "| corrections remembered | vectors | compared in stage one | stage one CPU p50 (ms) | "
        "p99 (ms) | memory (MB) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        cost,
        "",
        "Several photos: a second photo for half the sample items (every other id: the item "
        "at 15-40% of a frame among photos that are not in the catalog, one seeded view under "
        "another light, never a query), and, in the real-view set, the first of the real "
        "second photos of the items that have several (the others are the queries); each "
        "cut out to the item as a photo added on the item's page is. Stage "
        "two verifies the one photo of each candidate nearest the view by vector "
        "(`search.verify_photos` = 1), so the worker's keypoint matching per message is "
        "what it is with one photo; the index holds 8 more rows per photo.",
        "",
        "| set | items with a second photo | queries | top-1 one photo → two | those items' "
        "queries | the other items' queries | index rows |",
        "| --- | ---: | ---: | :---: | :---: | :---: | :---: |",
        f"| clutter, other photos (sample items) | {len(shop)} | {several}",
        f"| real views (items with several second photos) | {len(real_second)} | {real_several}",
    ]
    body = "\n".join(lines)
    publish(
        "photos-and-corrections",
        "## Several photos and corrections\n\n" + body,
        write=not args.no_write,
    )


def _answers(
    system: System,
    photos: Sequence[CatalogPhoto],
    queries: Sequence[Query],
    *,
    corrected: RecalledViews | None = None,
    corrections_verified: bool = False,
):
    answerer = system_answerer(
        system,
        photos,
        CatalogCache(),
        corrected=corrected,
        corrections_verified=corrections_verified,
    )
    ranked = rank_queries(
        system.featurizer,
        answerer,
        queries,
        sends=system.sends,
    )
    return ranked, answerer.index.vector_count


def _right(rankings: Sequence[Ranked]) -> list[bool]:
    wrong = {id(r) for r in answered_wrongly(rankings)}
    return [id(r) not in wrong for r in rankings]


def _share(flags: Sequence[bool]) -> str:
    return f"{sum(flags) / len(flags):.3f}" if flags else "-"


# How a correction acts: its view remembered by the workers (the product; the photo it
# also gives the item serves neither stage), or, as the product did before, its photo
# verified in stage two: cut out to the item, or whole.
CORRECTION_KINDS = (
    ("view remembered (the product)", True, True),
    ("photo cut out to the item, verified (before)", True, False),
    ("whole view as the photo, verified", False, False),
)


def _corrected(
    system: System,
    name: str,
    photos: list[CatalogPhoto],
    queries: list[Query],
    fresh: list[Query] | None,
) -> str:
    """One row per way a correction may act (:data:`CORRECTION_KINDS`)."""
    before, rows_before = _answers(system, photos, queries)
    fresh_before = _right(_answers(system, photos, fresh)[0]) if fresh else []
    was = _right(before)
    remembered = corrected_views(system.featurizer, photos, before)
    rng = np.random.default_rng(len(queries))
    later = [
        replace(r.query, image_bgr=_moment_later(r.query.image(), rng))
        for r in answered_wrongly(before)
    ]
    rows = []
    for kind, isolate, remember in CORRECTION_KINDS:
        added = correction_photos(system.featurizer, photos, before, isolate=isolate)
        answer = functools.partial(
            _answers,
            system,
            photos + added,
            corrected=remembered if remember else None,
            corrections_verified=not remember,
        )
        after, rows_after = answer(queries)
        now = _right(after)
        fixed = [n for w, n in zip(was, now, strict=True) if not w]
        kept = [n for w, n in zip(was, now, strict=True) if w]
        moved = _right(answer(later)[0]) if later else []
        fresh_cell = "-"
        if fresh:
            fresh_after = _right(answer(fresh)[0])
            fresh_cell = f"{_share(fresh_before)} → {_share(fresh_after)}"
        rows.append(
            f"| {name} | {kind} | {len(queries)} | {len(fixed)} | {len(added)} | "
            f"{len(remembered) if remember else 0} | {_share(fixed)} | {_share(moved)} | "
            f"{_share(kept)} | "
            f"{_share(was)} → {_share(now)} | {fresh_cell} | {rows_before:,} → {rows_after:,} |"
        )
    return "\n".join(rows)


def _moment_later(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same view a moment later: the camera moved by up to 1% of the frame, the light
    by up to 5%, and new sensor noise."""
    height, width = image.shape[:2]
    dx, dy = rng.uniform(-0.01, 0.01, 2) * (width, height)
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(image, shift, (width, height), borderMode=cv2.BORDER_REFLECT)
    lit = moved.astype(np.float32) * rng.uniform(0.95, 1.05)
    return np.clip(lit + rng.normal(0, 2.0, image.shape), 0, 255).astype(np.uint8)


def _recall_cost(system: System, photos: list[CatalogPhoto], queries: list[Query]) -> str:
    """Rows of a table: stage one's CPU per message (the worker's answer path, the sample
    catalog) with 0 to 10,000 corrections remembered, and what they hold in memory; and
    the once-per-correction cost of featurizing its view."""
    answerer = system_answerer(system, photos, CatalogCache())
    sent = list(sent_queries(system.featurizer, queries, sends=system.sends))
    views = [s.view for s in sent if s.view is not None]
    started = time.perf_counter()
    for view in views:
        view_rows(system.featurizer.embed, view)
    per_view_ms = (time.perf_counter() - started) * 1000 / len(views)
    rng = np.random.default_rng(0)
    dim = system.featurizer.dim
    rows = []
    for corrections in (0, 100, 1_000, 10_000):
        matrix = rng.normal(size=(3 * corrections, dim)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-12
        # far from every query: the frame's vector and the view's two, for each correction
        remembered = RecalledViews.of(
            [(matrix[n : n + 1], matrix[n + 1 : n + 3], None) for n in range(0, len(matrix), 3)],
            dim,
        )
        answerer = Answerer(
            index=answerer.index, policy=answerer.policy, recall=lambda r=remembered: r
        )
        cpu = []
        with threadpool_limits(1):  # as the worker's match thread runs (worker.math_threads)
            for _ in range(3):
                for one in sent:
                    started = time.process_time()
                    answerer.first(one.vectors)
                    cpu.append((time.process_time() - started) * 1000)
        rows.append(
            f"| {corrections:,} | {len(matrix):,} | {len(remembered.sent.items):,} | "
            f"{p50_p99(cpu, digits=2, between=' | ')} | {matrix.nbytes / 1e6:.1f} |"
        )
    return "\n".join(rows), per_view_ms


def _shop_photos(
    photos: list[CatalogPhoto], backgrounds: list[np.ndarray], seed: int
) -> list[CatalogPhoto]:
    """Every other item's second photo: the item among other things, dimmer and warmer."""
    shop = []
    for n, photo in enumerate(sorted(photos, key=lambda p: p.item.item_id)):
        if n % 2:
            continue
        rng = np.random.default_rng(seed + n)
        image = clutter_view(photo.image_bgr, backgrounds, rng).image_bgr.astype(np.float32)
        image = np.clip(image * np.array([0.75, 0.85, 0.95], np.float32), 0, 255)  # BGR
        shop.append(added_photo(photo.item, image.astype(np.uint8), origin=PhotoOrigin.ADDED))
    return shop


def _real_second_photos(
    photos: list[CatalogPhoto], queries: list[Query]
) -> tuple[list[CatalogPhoto], list[Query]]:
    items = {p.item.item_id: p.item for p in photos}
    by_item: dict[str, list[Query]] = {}
    for query in queries:
        by_item.setdefault(query.item_id, []).append(query)
    second, rest = [], []
    for item_id, mine in by_item.items():
        if len(mine) < 2:
            continue
        second.append(added_photo(items[item_id], mine[0].image(), origin=PhotoOrigin.ADDED))
        rest += mine[1:]
    return second, rest


def _with_photos(
    system: System, photos: list[CatalogPhoto], extra: list[CatalogPhoto], queries: list[Query]
) -> str:
    one, rows_one = _answers(system, photos, queries)
    two, rows_two = _answers(system, photos + extra, queries)
    given = {p.item.item_id for p in extra}
    mine = [n for n, r in enumerate(one) if r.query.item_id in given]
    others = [n for n, r in enumerate(one) if r.query.item_id not in given]
    was, now = _right(one), _right(two)

    def pair(indexes: list[int]) -> str:
        return f"{_share([was[i] for i in indexes])} → {_share([now[i] for i in indexes])}"

    return (
        f"{len(queries)} | {_share(was)} → {_share(now)} | {pair(mine)} | {pair(others)} | "
        f"{rows_one:,} → {rows_two:,} |"
    )


if __name__ == "__main__":
    main()
