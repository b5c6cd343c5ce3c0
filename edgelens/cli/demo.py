"""``edgelens demo``: the whole product on this machine, stopped with Ctrl-C."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgelens.cli.context import log_to_file, reports_errors, settings_of, stop_on_signals

if TYPE_CHECKING:
    from edgelens.demo.runner import DemoReady


@reports_errors
def demo_command(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Option(help="Camera instead of the rendered video: 0, v4l2:///dev/video0, rtsp://…"),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Dashboard address; 0.0.0.0 for other machines [default: web.host]"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Dashboard port, an error if taken (0: any free one) [default: web.port, "
            "or any free port if that one is taken]",
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Log lines on the console too, not only in the log"),
    ] = False,
) -> None:
    """Run the whole product on this machine, with sample items, and say where to look.

    Starts redis-server, mosquitto, the worker, the dashboard and a device, with a catalog
    of their own (<data_dir>/demo); prints where to look and how to sign in. The log goes to
    <data_dir>/demo/demo.log; the console shows warnings and errors only."""
    stop = threading.Event()
    # Installed before the heavy imports below, so an early Ctrl-C is a clean stop too.
    with stop_on_signals(stop):
        from edgelens.demo.runner import demo_log_file, run_demo

        settings = settings_of(ctx)
        log_file = None if verbose else demo_log_file(settings)
        web = settings.web.model_copy(
            update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
        )
        with log_to_file(log_file) if log_file else nullcontext():
            run_demo(
                settings.model_copy(update={"web": web}),
                stop=stop,
                source=source,
                on_ready=partial(_banner, log_file=log_file),
                exact_port=port is not None,
            )
    typer.echo("demo stopped")


def _banner(ready: DemoReady, *, log_file: Path | None) -> None:
    """Printed once, after the start-up log lines, so the password is not lost among them."""
    network = f"  network:   {ready.network_url} (other machines)\n" if ready.network_url else ""
    camera = (
        f"  camera:    no frame from {ready.waiting_for} yet; retrying (see the log)\n"
        if ready.waiting_for
        else ""
    )
    log = f"  log:       {log_file}\n" if log_file else ""
    typer.secho(
        f"\nedgelens demo is running\n"
        f"  dashboard: {ready.url}\n"
        f"{network}"
        f"  sign in:   {ready.username} / {ready.password}  (to edit the catalog; "
        "a new password at every start)\n"
        f"{camera}"
        f"{log}"
        f"  stop:      Ctrl-C\n",
        fg=typer.colors.GREEN,
        bold=True,
    )
