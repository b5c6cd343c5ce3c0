"""``edgelens package``: build what gets installed elsewhere (the device bundle)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgelens.cli.context import reports_errors, settings_of
from edgelens.settings import Precision

app = typer.Typer(help="Build installable bundles.", no_args_is_help=True)


@app.command("device")
@reports_errors
def device(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Folder the bundle is written into.")],
    precision: Annotated[
        Precision,
        typer.Option(help="Model precision: fp16 suits TensorRT on a Jetson, fp32 a CPU."),
    ] = "fp16",
    archive: Annotated[bool, typer.Option(help="Also write a .tar.gz of the bundle.")] = False,
) -> None:
    """Build the device bundle: device-only wheel, model, config, systemd unit, install.sh."""
    from edgelens.bundle.device import build_bundle

    bundle = build_bundle(
        out, models_dir=settings_of(ctx).model_path, precision=precision, archive=archive
    )
    typer.echo(str(bundle))
