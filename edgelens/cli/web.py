"""``edgelens web``: serve the dashboard."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from edgelens.cli.context import reports_errors, settings_of
from edgelens.errors import ConfigError
from edgelens.featurizer.runtime import load_featurizer

app = typer.Typer(help="The web dashboard.", no_args_is_help=True)


@app.command("run")
@reports_errors
def run(ctx: typer.Context) -> None:
    """Serve the dashboard on web.host:web.port (e.g. EDGELENS_WEB__PORT=8080) until Ctrl-C."""
    # Imported here: the web stack is the [web] extra, and other commands must not need it.
    import uvicorn

    from edgelens.webapp.app import create_app

    settings = settings_of(ctx)
    # Loaded here rather than in the app's lifespan so that a missing or broken model is
    # one readable error line, not a startup traceback from uvicorn.
    featurizer = load_featurizer(settings)
    uvicorn.run(
        create_app(settings, featurizer=featurizer),
        host=settings.web.host,
        port=settings.web.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's lines in the CLI's logging format
    )


@app.command("add-admin")
@reports_errors
def add_admin(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="The admin's sign-in name.")],
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from standard input (scripts).")
    ] = False,
    password_file: Annotated[
        Path | None, typer.Option(help="Read the password from this file's first line.")
    ] = None,
) -> None:
    """Create a dashboard admin (or set a new password); admins may change the catalog.

    The password is asked for, or read from stdin or a file: never an argument, which
    other users of the machine can read."""
    from edgelens.webapp.services.accounts import AccountStore, accounts_path

    if password_file is not None:
        try:
            password = password_file.read_text().split("\n", 1)[0]
        except OSError as exc:
            raise ConfigError(f"cannot read the password file: {exc}") from exc
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = settings_of(ctx)
    accounts = AccountStore(accounts_path(settings.data_dir))
    try:
        accounts.set_admin(username=username, password=password)
    finally:
        accounts.close()
    typer.echo(f"admin {username} can sign in at /login")
