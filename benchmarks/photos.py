"""Several photos per item, and corrections: what they do to the answer, side by side.

Every figure comes from the worker's own answer path (edgelens.cloud.answer through
edgelens.evaluation.runner), the product as its settings describe it (FP32):
- corrections: each query answered wrongly (another item first, or "no match") gives its
  view, as the device sent it, to its own item as a photo (what a correction on the device
  page does; edgelens.evaluation.corrections); then the same queries are answered again,
  and, where the set can make them, new views of the same items (another seed);
- several photos: half the sample items (every other id) get a second photo, one view of
  the item in clutter under another light (a stand-in for a photo taken on the shelf),
  never one of the queries; the item-in-clutter queries are answered with and without it;
- the real-view set's items that have more than one real second photo: the first becomes
  a second catalog photo, the others are answered with and without it.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import common_arguments, write_section
from edgelens.catalog.models import PhotoOrigin
from edgelens.catalog.sources import collect_sources
from edgelens.evaluation.clutter import clutter_view
from edgelens.evaluation.corrections import added_photo, answered_wrongly, correction_photos
from edgelens.evaluation.real_views import fetch_real_views, real_view_query_sets
from edgelens.evaluation.runner import (
    CatalogPhoto,
    Query,
    Ranked,
    System,
    clutter_queries,
    cover_images,
    load_catalog,
    rank_queries,
    system_answerer,
)
from edgelens.evaluation.variants import variant_suite
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import write_sample_catalog
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
    shop = _shop_photos(photos, backgrounds, args.seed + 50)
    several = _with_photos(system, photos, shop, clutter(args.seed + 2))
    real_second, real_rest = _real_second_photos(real_photos, real_queries)
    real_several = _with_photos(system, real_photos, real_second, real_rest)

    lines = [
        "Corrections: each query answered wrongly gives its view, as the device sent it, to "
        "its own item (a correction on the device page), at most "
        "8 photos an item: cropped to the item by the saliency model as the product does "
        "(edgelens.catalog.isolate), and, as the baseline, whole; then the same queries "
        "again, and new views of the same items where the set makes them (another seed). "
        "A correction serves stage two only (verification; it gives the index no rows, "
        "`edgelens.catalog.models.indexed_photos`). "
        "'Others' are the queries that were right before: the share still right after.",
        "",
        "| set | photo added | queries | wrong before | corrected (photos added) | the same "
        "views right after | others still right | set top-1 before → after | new views top-1 "
        "before → after | index rows before → after |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | :---: | :---: | :---: |",
        *corrections,
        "",
        "Several photos: a second photo for half the sample items (every other id: the item "
        "at 15-40% of a frame among photos that are not in the catalog, one seeded view under "
        "another light, never a query), and, in the real-view set, the first of the real "
        "second photos of the items that have several (the others are the queries); each "
        "cropped to the item as a photo added on the item's page is. Stage "
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
    print(body)
    if not args.no_write:
        write_section("photos-and-corrections", "## Several photos and corrections\n\n" + body)


def _answers(system: System, photos: Sequence[CatalogPhoto], queries: Sequence[Query]):
    answerer = system_answerer(system, photos, {})
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


def _corrected(
    system: System,
    name: str,
    photos: list[CatalogPhoto],
    queries: list[Query],
    fresh: list[Query] | None,
) -> str:
    """Two rows: the corrections as the product makes them (the view cropped to the item),
    and with the whole view (the crop's baseline)."""
    before, rows_before = _answers(system, photos, queries)
    fresh_before = _right(_answers(system, photos, fresh)[0]) if fresh else []
    was = _right(before)
    rows = []
    for kind, isolate in (("cropped to the item", True), ("whole view", False)):
        added = correction_photos(system.featurizer, photos, before, isolate=isolate)
        after, rows_after = _answers(system, photos + added, queries)
        now = _right(after)
        fixed = [n for w, n in zip(was, now, strict=True) if not w]
        kept = [n for w, n in zip(was, now, strict=True) if w]
        fresh_cell = "-"
        if fresh:
            fresh_after = _right(_answers(system, photos + added, fresh)[0])
            fresh_cell = f"{_share(fresh_before)} → {_share(fresh_after)}"
        rows.append(
            f"| {name} | {kind} | {len(queries)} | {len(fixed)} | {len(added)} | "
            f"{_share(fixed)} | {_share(kept)} | {_share(was)} → {_share(now)} | {fresh_cell} | "
            f"{rows_before:,} → {rows_after:,} |"
        )
    return "\n".join(rows)


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
        second.append(added_photo(items[item_id], mine[0].image_bgr, origin=PhotoOrigin.ADDED))
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
