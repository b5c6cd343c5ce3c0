"""Entry point: ``edgelens [--config FILE] <group> <command>``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from edgelens.cli.context import configure_logging, print_error
from edgelens.errors import ConfigError
from edgelens.settings import load_settings

app = typer.Typer(
    name="edgelens",
    help="Edge visual search: camera → vector → match → dashboard.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# (module under edgelens.cli, its Typer app or command, the name it gets). The device
# bundle ships only config, model and device: a group whose module, or the extra it needs
# (the catalog's database layer, say), is not installed is left out of the CLI, not an error.
_GROUPS = (
    ("config", "app", "config"),
    ("model", "app", "model"),
    ("catalog", "app", "catalog"),
    ("cloud", "app", "cloud"),
    ("device", "app", "device"),
    ("web", "app", "web"),
    ("bench", "app", "bench"),
    ("package", "app", "package"),
    ("evaluate", "eval_command", "eval"),
    ("demo", "demo_command", "demo"),
)


def _add_groups() -> None:
    for module_name, attribute, name in _GROUPS:
        try:
            module = importlib.import_module(f"edgelens.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"edgelens.cli.{module_name}" or not _ours(exc.name):
                continue  # a slim install without this part
            raise
        command = getattr(module, attribute)
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=name)
        else:
            app.command(name)(command)


def _ours(module: str | None) -> bool:
    return (module or "").split(".")[0] == "edgelens"


_add_groups()


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
        print_error("configuration error", exc)
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level)
    ctx.obj = settings
