"""``edgelens web``: serve the dashboard."""

from __future__ import annotations

import typer

from edgelens.cli.context import reports_errors, settings_of
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
