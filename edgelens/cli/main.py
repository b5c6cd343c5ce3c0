"""Entry point: ``edgelens [--config FILE] <group> <command>``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgelens.cli import bench, catalog, cloud, config, demo, device, evaluate, model, web
from edgelens.cli.context import configure_logging, err_console
from edgelens.errors import ConfigError
from edgelens.settings import load_settings

app = typer.Typer(
    name="edgelens",
    help="Edge visual search: camera → vector → match → dashboard.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(config.app, name="config")
app.add_typer(model.app, name="model")
app.add_typer(catalog.app, name="catalog")
app.add_typer(cloud.app, name="cloud")
app.add_typer(device.app, name="device")
app.add_typer(web.app, name="web")
app.add_typer(bench.app, name="bench")
app.command("eval")(evaluate.eval_command)
app.command("demo")(demo.demo_command)


@app.callback()
def main(
    ctx: typer.Context,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML settings file (else $EDGELENS_CONFIG)."),
    ] = None,
) -> None:
    """Load the settings once; every command reads them from the context."""
    try:
        settings = load_settings(config_file)
    except ConfigError as exc:
        err_console.print(f"[bold red]configuration error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level)
    ctx.obj = settings
