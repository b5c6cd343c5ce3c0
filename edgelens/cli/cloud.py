"""``edgelens cloud run``: the matching worker."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from edgelens.cli.context import ReloadPid, reports_errors, settings_of
from edgelens.wire.names import STATUS_ACCOUNT_SUFFIX

app = typer.Typer(help="The cloud worker: vectors in, matches out.", no_args_is_help=True)


@app.command("run")
@reports_errors
def run(
    ctx: typer.Context,
    group: Annotated[
        str | None, typer.Option(help="Shared-subscription group (workers split its load).")
    ] = None,
) -> None:
    """Subscribe to every device's vectors, search the catalog, push matches to Redis."""
    from edgelens.cloud.worker import Worker

    settings = settings_of(ctx)
    if group:
        settings = settings.model_copy(
            update={"worker": settings.worker.model_copy(update={"share_group": group})}
        )
    worker = Worker(settings)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: worker.request_stop())
    worker.run_forever()


@app.command("enroll")
@reports_errors
def enroll(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The worker account's name.")],
    reload_pid: ReloadPid = None,
) -> None:
    """On the broker host: create MQTT credentials for workers.

    Workers read every device's topics: the account NAME for frames and NAME.status, with
    the same password, for the statuses."""
    from edgelens.cli.enroll import enroll as enroll_account

    settings = settings_of(ctx)
    credentials = enroll_account(settings, name=name, worker=True, reload_pid=reload_pid)
    typer.echo(
        f"worker accounts {name} (frames) and {name}{STATUS_ACCOUNT_SUFFIX} (statuses) "
        "enrolled; workers need (shown once):"
    )
    typer.echo(f"  EDGELENS_MQTT_URL={credentials.url(str(settings.mqtt_url))}")
