"""``edgelens demo``: the whole product on this machine, stopped with Ctrl-C."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from edgelens.cli.context import reports_errors, settings_of


@reports_errors
def demo_command(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Option(help="Camera instead of the rendered video: 0, v4l2:///dev/video0, rtsp://…"),
    ] = None,
) -> None:
    """Start redis-server, mosquitto, the worker, the dashboard and a device; print the URL."""
    from edgelens.demo.runner import run_demo

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def ready(url: str) -> None:
        typer.secho(
            f"\nedgelens demo is running: open {url}\n(Ctrl-C stops everything)\n",
            fg=typer.colors.GREEN,
            bold=True,
        )

    run_demo(settings_of(ctx), stop=stop, source=source, on_ready=ready)
    typer.echo("demo stopped")
