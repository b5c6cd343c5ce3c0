"""Shared by ``edgelens device enroll|revoke`` and ``edgelens cloud enroll``: write or
delete an MQTT account, and make the running broker reread its files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from edgelens.errors import ConfigError
from edgelens.settings import Settings

if TYPE_CHECKING:
    from edgelens.broker.accounts import BrokerAccounts, Credentials


def enroll(settings: Settings, *, name: str, worker: bool, reload_pid: int | None) -> Credentials:
    """Create the account (a new password if it exists) and have the broker reload."""
    accounts = _accounts(settings)
    credentials = accounts.enroll_worker(name) if worker else accounts.enroll_device(name)
    _reload(settings, reload_pid)
    return credentials


def revoke(settings: Settings, *, name: str, reload_pid: int | None) -> bool:
    """Delete the account and have the broker reload; False if there was none."""
    removed = _accounts(settings).remove(name)
    if removed:
        _reload(settings, reload_pid)
    return removed


def _accounts(settings: Settings) -> BrokerAccounts:
    try:
        from edgelens.broker.accounts import BrokerAccounts
    except ModuleNotFoundError as exc:  # the device bundle ships no broker code
        raise ConfigError("enroll on the broker host, where edgelens is fully installed") from exc
    return BrokerAccounts(
        password_file=settings.broker_password_file, acl_file=settings.broker_acl_file
    )


def _reload(settings: Settings, reload_pid: int | None) -> None:
    from edgelens.broker.accounts import reload_broker

    pid = reload_pid if reload_pid is not None else _pid_from(settings.broker.pid_file)
    if pid is not None:
        reload_broker(pid)
        typer.echo(f"broker (pid {pid}) reloaded its accounts")
    else:
        typer.echo(
            "reload the broker to take the change: kill -HUP $(pidof mosquitto) "
            "(or set broker.pid_file / pass --reload-pid)"
        )


def _pid_from(pid_file: Path | None) -> int | None:
    if pid_file is None or not pid_file.exists():
        return None
    try:
        return int(pid_file.read_text().strip())
    except ValueError as exc:
        raise ConfigError(f"{pid_file} holds no process id") from exc
