"""``edgelens model``: export the featurizer and inspect the exported artefacts."""

from __future__ import annotations

import json
from typing import Annotated, get_args

import typer

from edgelens.cli.context import reports_errors, settings_of
from edgelens.featurizer.manifest import load_manifest
from edgelens.settings import Pooling, Precision

app = typer.Typer(help="Export and inspect the ONNX featurizer.", no_args_is_help=True)


@app.command("export")
@reports_errors
def export(
    ctx: typer.Context,
    precision: Annotated[
        list[str], typer.Option("--precision", "-p", help="fp32, fp16, int8 or all (repeatable).")
    ] = ["all"],  # noqa: B006 - typer reads the default, never mutates it
    force: Annotated[bool, typer.Option(help="Re-export even if the artefact exists.")] = False,
) -> None:
    # The backslash keeps the help (rich markup) from reading [export] as a style tag.
    """Export EfficientNet-Lite0 to ONNX (FP32, FP16, INT8); skips existing artefacts.

    Needs the export extra: pip install "edgelens\\[export]"."""
    precisions = get_args(Precision)
    unknown = sorted(set(precision) - {*precisions, "all"})
    if unknown:  # typer cannot restrict a repeatable option's values (a list of Literal)
        raise typer.BadParameter(
            f"{', '.join(unknown)}: give {', '.join(precisions)} or all", param_hint="'--precision'"
        )
    try:
        from edgelens.models.export import export_models
    except ImportError as exc:
        raise typer.BadParameter(
            f"export needs the [export] extra (torch, onnx): {exc}", param_hint="install"
        ) from exc
    wanted = list(precisions) if "all" in precision else precision
    settings = settings_of(ctx)
    for manifest in export_models(settings.model_path, wanted, force=force):
        typer.echo(f"{manifest.pooling}\t{manifest.precision}\t{manifest.model_id}")


@app.command("info")
@reports_errors
def info(
    ctx: typer.Context,
    precision: Annotated[Precision, typer.Option("--precision", "-p")] = "fp32",
    pooling: Annotated[Pooling, typer.Option(help="rgem (product) or gap (baseline).")] = "rgem",
) -> None:
    """Print one model's manifest."""
    manifest = load_manifest(settings_of(ctx).model_path, precision, pooling)
    typer.echo(json.dumps(manifest.to_dict(), indent=2))
