"""``edgelens config``: validate and show the effective settings.

Loading happens in the root callback, which already turns invalid settings into
readable errors (exit status 2); these commands report the valid outcome.
"""

from __future__ import annotations

import json

import typer

from edgelens.cli.context import settings_of

app = typer.Typer(help="Check and show settings.", no_args_is_help=True)


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Validate the settings file and EDGELENS_* variables; exit 2 with readable errors."""
    settings = settings_of(ctx)
    typer.echo(f"configuration OK (data dir: {settings.data_dir.resolve()})")


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON."""
    typer.echo(json.dumps(settings_of(ctx).model_dump(mode="json"), indent=2))
