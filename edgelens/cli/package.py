"""``edgelens package``: build what gets installed elsewhere (the device bundle)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Annotated, Literal

import typer

from edgelens.cli.context import reports_errors, settings_of
from edgelens.errors import ConfigError

app = typer.Typer(help="Build installable bundles.", no_args_is_help=True)

# The bundle's builder and templates live in the source tree's scripts/, next to the
# other packaging and set-up scripts; this command is their front door.
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "package_device.py"


@app.command("device")
@reports_errors
def device(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Folder the bundle is written into.")],
    precision: Annotated[
        Literal["fp32", "fp16", "int8"],
        typer.Option(help="Model precision: fp16 suits TensorRT on a Jetson, fp32 a CPU."),
    ] = "fp16",
    archive: Annotated[bool, typer.Option(help="Also write a .tar.gz of the bundle.")] = False,
) -> None:
    """Build the device bundle: device-only wheel, model, config, systemd unit, install.sh."""
    bundle = _builder().build_bundle(
        out, models_dir=settings_of(ctx).model_path, precision=precision, archive=archive
    )
    typer.echo(str(bundle))


def _builder() -> ModuleType:
    if not SCRIPT.is_file():
        raise ConfigError(f"packaging needs a source checkout; {SCRIPT} is missing")
    spec = importlib.util.spec_from_file_location("package_device", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
