"""``edgelens device``: run the camera side on this machine."""

from __future__ import annotations

import threading
from typing import Annotated

import typer
from pydantic import ValidationError

from edgelens.cli.context import ReloadPid, reports_errors, settings_of, stop_on_signals
from edgelens.device.loop import DeviceLoop
from edgelens.device.model_updates import ModelUpdates
from edgelens.errors import ConfigError
from edgelens.featurizer.runtime import load_featurizer
from edgelens.settings import (
    DeviceSettings,
    format_validation_error,
    redact_urls,
    require_secrets,
)

app = typer.Typer(help="Run the camera side: frames → vectors → MQTT.", no_args_is_help=True)


@app.command("run")
@reports_errors
def run(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Option(
            help="0, v4l2:///dev/video0, csi://0, rtsp://…, file://… or a path, "
            "or a folder of images [default: device.source]"
        ),
    ] = None,
    device_id: Annotated[
        str | None, typer.Option(help="Names the MQTT topics [default: device.device_id]")
    ] = None,
    loop: Annotated[
        bool | None,
        typer.Option("--loop/--no-loop", help="Repeat a video or folder [default: device.loop]"),
    ] = None,
    fps_cap: Annotated[
        float | None,
        typer.Option(help="Most frames featurized per second [default: device.fps_cap]"),
    ] = None,
) -> None:
    """Featurize frames and publish them until Ctrl-C, or until a file ends (without --loop).

    Switches to a model the fleet is offered (device.model_server_url) without a restart."""
    settings = settings_of(ctx)
    require_secrets(settings, mqtt=True)
    device = _device_settings(
        settings.device, source=source, device_id=device_id, loop=loop, fps_cap=fps_cap
    )
    stop = threading.Event()
    device_loop = DeviceLoop(
        device=device,
        featurizer=load_featurizer(settings),
        mqtt_url=str(settings.mqtt_url),
        mqtt_tls=settings.mqtt_tls,
        stop=stop,
    )
    with stop_on_signals(stop), ModelUpdates.for_loop(device_loop, settings):
        stats = device_loop.run()
    typer.echo(
        f"device {device.device_id}: captured {stats.captured}, published {stats.published}, "
        f"gated {stats.suppressed} (same view), dropped {stats.dropped} "
        f"(+{stats.unsent} while disconnected); ms per frame: "
        f"decode {stats.decode_ms_mean:.1f}, preprocess {stats.preprocess_ms_mean:.1f}, "
        f"featurize {stats.featurize_ms_mean:.1f}, publish {stats.publish_ms_mean:.1f}"
    )


@app.command("enroll")
@reports_errors
def enroll(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(help="The new device's id (its MQTT user).")],
    reload_pid: ReloadPid = None,
) -> None:
    """On the broker host: create a device's MQTT credentials and print what it needs.

    The ACL limits the device to publishing under edgelens/<device_id>/."""
    from edgelens.cli.enroll import enroll as enroll_account

    settings = settings_of(ctx)
    credentials = enroll_account(settings, name=device_id, worker=False, reload_pid=reload_pid)
    typer.echo(f"device {device_id} enrolled; it needs (shown once):")
    typer.echo(f"  EDGELENS_MQTT_URL={credentials.url(str(settings.mqtt_url))}")
    typer.echo(f"  password: {credentials.password}")
    typer.echo(
        f"  or, with that password in a file only you can read: ./install.sh --device-id "
        f"{device_id} --username {credentials.username} --password-file FILE "
        f"--broker {redact_urls(str(settings.mqtt_url))}"
    )


@app.command("revoke")
@reports_errors
def revoke(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(help="The device whose MQTT account goes.")],
    reload_pid: ReloadPid = None,
) -> None:
    """On the broker host: delete a device's MQTT account; it cannot connect any more."""
    from edgelens.cli.enroll import revoke as revoke_account

    if not revoke_account(settings_of(ctx), name=device_id, reload_pid=reload_pid):
        raise ConfigError(f"no MQTT account {device_id!r}")
    typer.echo(f"device {device_id} revoked")


def _device_settings(base: DeviceSettings, **flags: object) -> DeviceSettings:
    """The configured device section with the given flags on top, validated like the file."""
    # model_copy does not validate, so the merged section is validated once more.
    merged = base.model_copy(update={k: v for k, v in flags.items() if v is not None})
    try:
        return DeviceSettings.model_validate(merged.model_dump())
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc
