"""``edgelens eval``: retrieval quality on labelled real views or synthetic camera views."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgelens.catalog.sources import collect_sources
from edgelens.cli.context import progress_bar, reports_errors, settings_of
from edgelens.errors import EdgelensError
from edgelens.evaluation.runner import catalog_index, evaluate, folder_queries, synthetic_queries
from edgelens.featurizer.runtime import Featurizer
from edgelens.settings import Precision


@reports_errors
def eval_command(
    ctx: typer.Context,
    catalog: Annotated[Path, typer.Option(help="Catalog images named <item_id>.<ext>.")],
    queries: Annotated[
        Path | None, typer.Option(help="Query images as <queries>/<item_id>/*.")
    ] = None,
    synthetic_views: Annotated[
        int, typer.Option(min=0, help="Camera-like views per catalog image to evaluate on.")
    ] = 0,
    precision: Annotated[Precision | None, typer.Option(help="Model precision.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic views.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on one line.")] = False,
) -> None:
    """Print top-1, top-5, recall@10 and mAP over the queries."""
    if (queries is None) == (synthetic_views == 0):
        raise typer.BadParameter("give exactly one of --queries DIR or --synthetic-views N")
    if not catalog.is_dir():
        raise EdgelensError(f"catalog folder not found: {catalog}")
    settings = settings_of(ctx)
    cfg = settings.featurizer
    featurizer = Featurizer.from_models_dir(
        settings.model_path,
        precision or cfg.precision,
        providers=cfg.providers,
        threads=cfg.threads,
        batch_size=cfg.batch_size,
    )
    sources = collect_sources([catalog])
    index, images = catalog_index(featurizer, sources)
    query_set = (
        folder_queries(queries)
        if queries is not None
        else synthetic_queries(images, synthetic_views, seed)
    )
    if not query_set:
        raise EdgelensError("no query images found")
    with progress_bar("evaluating", len(query_set)) as advance:
        metrics = evaluate(featurizer, index, query_set, progress=None if as_json else advance)
    if as_json:
        typer.echo(json.dumps({**metrics.to_dict(), "model_id": featurizer.model_id}))
        return
    typer.echo(
        f"model {featurizer.model_id}, {len(index)} catalog items, {metrics.queries} queries\n"
        f"top-1 {metrics.top1:.3f}  top-5 {metrics.top5:.3f}  "
        f"recall@10 {metrics.recall_at_10:.3f}  mAP {metrics.map:.3f}"
    )
