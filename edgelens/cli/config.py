"""``edgelens config``: validate and show the effective settings.

Loading happens in the root callback, which already turns invalid settings into
readable errors (exit status 2); these commands report the valid outcome.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from edgelens.cli.context import err_console, print_error, settings_of
from edgelens.settings import production_problems

app = typer.Typer(help="Check and show settings.", no_args_is_help=True)


@app.command("check")
def check(
    ctx: typer.Context,
    production: Annotated[
        bool,
        typer.Option(
            "--production",
            help="Also refuse what production must not run with (as mode = production "
            "does): default secrets, plain MQTT or Redis to another machine, insecure "
            "cookies, a public dashboard; each with the setting that fixes it.",
        ),
    ] = False,
) -> None:
    """Validate the settings file and EDGELENS_* variables; exit 2 with readable errors."""
    settings = settings_of(ctx)
    if production and (problems := production_problems(settings)):
        print_error("not ready for production", f"{len(problems)} problem(s)")
        for problem in problems:
            err_console.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2)
    ready = " and ready for production" if production else ""
    typer.echo(f"configuration OK{ready} (data dir: {settings.data_dir.resolve()})")


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON (passwords in URLs shown as ***)."""
    typer.echo(json.dumps(settings_of(ctx).redacted(), indent=2))
