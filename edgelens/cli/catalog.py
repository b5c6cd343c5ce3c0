"""``edgelens catalog``: add, list, remove and re-index catalog items; migrate their keypoints;
copy the catalog to another database."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.ingest import add_items, migrate_keypoints, reindex
from edgelens.catalog.migrate import copy_catalog
from edgelens.catalog.models import IngestReport
from edgelens.catalog.notify import notify_catalog_changed
from edgelens.catalog.sources import collect_sources
from edgelens.catalog.store import CatalogStore
from edgelens.cli.context import progress_bar, reports_errors, settings_of
from edgelens.errors import ModelError
from edgelens.featurizer import local_features
from edgelens.featurizer.manifest import ModelManifest
from edgelens.featurizer.runtime import Featurizer, load_featurizer
from edgelens.settings import Settings
from edgelens.wire.names import ROLLOUT_KEY
from edgelens.wire.rollout import Rollout

app = typer.Typer(help="Manage the catalog.", no_args_is_help=True)


@app.command("add")
@reports_errors
def add(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Images; folders (of images, each an item named by its file; or of item "
            "folders, <item_id>/*, each file a photo of that item); or CSV/JSON manifests "
            "(columns id, name, price, currency, available, image and/or images: several "
            "photos separated by ';')."
        ),
    ],
    images_anywhere: Annotated[
        bool,
        typer.Option(
            "--images-anywhere",
            help="Let a manifest name images outside its own folder (refused by default).",
        ),
    ] = False,
) -> None:
    """Add or update items with their photos, from folders, images or manifests.

    Images already featurized by this model are not featurized again. An item's photos from
    an earlier import are replaced by this one's; photos added on its page stay."""
    settings = settings_of(ctx)
    sources = collect_sources(paths, images_anywhere=images_anywhere)
    store, report = _featurize(
        settings,
        description="importing",
        total=lambda _: len(sources),
        ingest=partial(add_items, sources=sources),
        during_rollout=True,
    )
    items, photos = store.photo_counts()
    typer.echo(f"catalog: {items} item(s), {photos} photo(s)")
    if report.failed:  # the others are in; a script still learns that some were not
        raise typer.Exit(1)


@app.command("reindex")
@reports_errors
def reindex_command(ctx: typer.Context) -> None:
    """Featurize every item with the configured model (cached vectors are reused)."""
    _featurize(settings_of(ctx), description="re-indexing", total=len, ingest=reindex)


@app.command("migrate-keypoints")
@reports_errors
def migrate_keypoints_command(ctx: typer.Context) -> None:
    """Re-make keypoints stored by earlier methods in the current one, after an upgrade.

    Every photo's keypoints of an earlier method (1000 SIFT keypoints at full precision;
    compact ones extracted without enlarging small photos; then ones extracted without
    equalising contrast) are made again from the stored images, and the old ones deleted;
    counts are checked. Resumable; the database file keeps its size until a VACUUM reclaims
    the freed pages."""
    settings = settings_of(ctx)
    store = CatalogStore(settings.catalog_url)
    counts = store.local_features_counts()
    changed = False
    for old_method in local_features.EARLIER_METHOD_IDS:
        if not counts.get(old_method):
            continue
        with progress_bar(f"migrating keypoints {old_method}", counts[old_method]) as advance:
            report = migrate_keypoints(
                store=store,
                images_dir=settings.images_dir,
                old_method=old_method,
                progress=advance,
            )
        typer.echo(
            f"keypoints {report.old_method} -> {report.method}: {report.old_rows} photo(s); "
            f"re-extracted {report.from_images}, converted from stored rows {report.from_rows}, "
            f"already migrated {report.already}; {report.method} now {report.rows_after}, "
            f"{report.old_method} left {report.old_rows_left}"
        )
        changed = changed or bool(report.made or report.already)
    if changed:
        notify_catalog_changed(store=store, redis_url=str(settings.redis_url))
    else:
        typer.echo(f"every photo's keypoints are {local_features.METHOD_ID} already")


@app.command("migrate")
@reports_errors
def migrate_command(
    ctx: typer.Context,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The database to copy into: postgresql://user:password@host:5432/db (or a "
            "SQLite file); it must hold no catalog yet.",
        ),
    ],
) -> None:
    """Copy this catalog (catalog.url) into another database, such as PostgreSQL.

    Every table's rows are counted on both sides; then point catalog.url
    (EDGELENS_CATALOG__URL) at it. The images stay in the images folder."""
    settings = settings_of(ctx)
    source = CatalogStore(settings.catalog_url)
    target = CatalogStore(to)
    try:
        total = sum(source.row_counts().values())
        with progress_bar(f"copying the catalog to {target.location}", total) as advance:
            counts = copy_catalog(source=source, target=target, progress=advance)
    finally:
        source.close()
        target.close()
    typer.echo(
        f"copied to {target.location}: {counts['items']} item(s), {counts['photos']} photo(s), "
        f"{counts['vectors']} vector set(s), {counts['local_features']} keypoint set(s), "
        f"{counts['changes']} change(s), {counts['corrections']} correction(s); counts checked. "
        f"Set catalog.url (EDGELENS_CATALOG__URL) to use it."
    )


@app.command("list")
@reports_errors
def list_items(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List catalog items."""
    store = CatalogStore(settings_of(ctx).catalog_url)
    photos = store.photos_per_item()
    for item in store.items():
        if as_json:
            typer.echo(json.dumps(item.__dict__ | {"photos": photos.get(item.item_id, 0)}))
        else:
            price = "-" if item.price is None else f"{item.price:.2f} {item.currency}"
            state = "available" if item.available else "unavailable"
            count = photos.get(item.item_id, 0)
            typer.echo(f"{item.item_id}\t{item.name}\t{price}\t{state}\t{count} photo(s)")


@app.command("remove")
@reports_errors
def remove(
    ctx: typer.Context, item_ids: Annotated[list[str], typer.Argument(help="Item ids.")]
) -> None:
    """Remove items; unknown ids are reported and exit with status 1."""
    settings = settings_of(ctx)
    store = CatalogStore(settings.catalog_url)
    removed = store.remove(item_ids)
    typer.echo(f"removed {len(removed)} item(s)")
    if removed:
        notify_catalog_changed(store=store, redis_url=str(settings.redis_url))
    missing = sorted(set(item_ids) - set(removed))
    if missing:
        typer.echo(f"not in the catalog: {', '.join(missing)}", err=True)
        raise typer.Exit(1)


def _featurize(
    settings: Settings,
    *,
    description: str,
    total: Callable[[CatalogStore], int],
    ingest: Callable[..., IngestReport],
    during_rollout: bool = False,
) -> tuple[CatalogStore, IngestReport]:
    """Run ``ingest`` (:func:`add_items` given its sources, or :func:`reindex`) with the
    configured model and recipe, under a progress bar of ``total(store)`` steps, and print
    its report; ``during_rollout``, also with the model a rollout moves the fleet from. The
    workers are woken when the catalog's change log moved. Returns the configured model's
    report."""
    featurizer = load_featurizer(settings)
    featurizers = [featurizer]
    if during_rollout and (previous := _rolled_out_from(settings, featurizer)) is not None:
        featurizers.append(previous)
    store = CatalogStore(settings.catalog_url)
    before = store.last_change
    reports = []
    for model in featurizers:
        with progress_bar(description, total(store)) as advance:
            reports.append(
                ingest(
                    store=store,
                    featurizer=model,
                    images_dir=settings.images_dir,
                    recipe=CatalogRecipe(settings.catalog.views),
                    progress=advance,
                )
            )
        _print_report(reports[-1], model.model_id)
    if store.last_change != before:
        notify_catalog_changed(store=store, redis_url=str(settings.redis_url))
    return store, reports[0]


def _rolled_out_from(settings: Settings, configured: Featurizer) -> Featurizer | None:
    """During a rollout to the configured model, the model the fleet moves from: what is
    added meanwhile is featurized by it too (as the web app's uploads are), so the devices
    still running it find it. None when no rollout is under way, or (said) when Redis
    cannot tell or that model's file is no longer here."""
    import redis  # the [cloud]/[web] extra, as notify_catalog_changed

    client = redis.Redis.from_url(
        str(settings.redis_url), socket_timeout=1.0, socket_connect_timeout=1.0
    )
    try:
        rollout = Rollout.from_redis(client.hgetall(ROLLOUT_KEY))
    except redis.RedisError as exc:
        typer.echo(
            f"rollout unknown ({exc}): featurizing with {configured.model_id} only", err=True
        )
        return None
    finally:
        client.close()
    if rollout is None or not rollout.moves_to(configured.model_id):
        return None
    try:
        return load_featurizer(settings, ModelManifest.from_json(rollout.from_manifest))
    except ModelError as exc:
        typer.echo(
            f"a rollout from model {rollout.from_model} is under way, but that model cannot be "
            f"loaded here ({exc}): devices still running it find these photos once they switch",
            err=True,
        )
        return None


def _print_report(report: IngestReport, model_id: str) -> None:
    typer.echo(
        f"model {model_id}: added {report.added}, updated {report.updated}, "
        f"unchanged {report.unchanged}; featurized {report.featurized}, "
        f"from cache {report.cached}, failed {len(report.failed)}"
    )
    for path, reason in report.failed:
        typer.echo(f"  failed: {path}: {reason}", err=True)


@app.command("samples")
@reports_errors
def samples(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the photos and catalog.json.")],
) -> None:
    """Write the demo catalog: real photos shipped by scikit-image, with a JSON manifest."""
    try:
        from edgelens.samples.photos import write_sample_catalog
    except ImportError as exc:  # scikit-image is in the [eval] extra
        raise typer.BadParameter(f"needs the [eval] extra: {exc}") from exc
    typer.echo(str(write_sample_catalog(out_dir)))
