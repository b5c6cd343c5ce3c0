"""Per-device MQTT credentials and the ACL that keeps each device under its own topics.

mosquitto reads a password file (``user:$7$<iterations>$<salt>$<hash>``, PBKDF2-SHA512,
the format ``mosquitto_passwd`` writes) and an ACL file, and reloads both on SIGHUP, so
a device is enrolled without restarting the broker. The ACL gives every account write
access to ``edgelens/<its own username>/features`` and ``.../status`` only (a device's
username is its device id), and the worker accounts read access to all devices' topics:
a worker has two accounts, one per connection (its frames, and its statuses under the
name with :data:`STATUS_ACCOUNT_SUFFIX`), each reading only what that connection reads.
A device reads only the models it is offered: ``edgelens/<its id>/model`` and the
fleet's, :data:`FLEET_MODEL_TOPIC`; a worker's main account offers them (writes both).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgelens.errors import ConfigError
from edgelens.wire.names import FLEET_MODEL_TOPIC, STATUS_ACCOUNT_SUFFIX, valid_device_id

logger = logging.getLogger(__name__)

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default for sha512-pbkdf2
_SALT_BYTES = 12
_WORKER_LINE = re.compile(r"^user (\S+)$")

_ACL_HEADER = f"""\
# edgelens MQTT ACL, written by `edgelens device enroll` / `edgelens cloud enroll`.
# Devices (username = device id) publish only under their own id, and read only the
# model offered to them and the one offered to the fleet.
pattern write edgelens/%u/features
pattern write edgelens/%u/status
pattern read edgelens/%u/model
pattern read {FLEET_MODEL_TOPIC}
"""
# A worker offers models: to one device, or to the fleet ("+" covers "_fleet" too; named
# anyway, so the grant reads as what it is).
_WORKER_BLOCK = f"""
user {{name}}
topic read edgelens/+/features
topic write edgelens/+/model
topic write {FLEET_MODEL_TOPIC}
"""
_STATUS_BLOCK = """
user {name}
topic read edgelens/+/status
"""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def url(self, broker_url: str) -> str:
        """``broker_url`` with these credentials in it (``mqtt://user:pass@host:port``)."""
        scheme, sep, rest = broker_url.partition("://")
        if not sep:
            raise ConfigError(f"not a broker URL: {broker_url!r}")
        host = rest.rsplit("@", 1)[-1]
        return f"{scheme}://{self.username}:{self.password}@{host}"


def password_hash(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    return f"$7${PBKDF2_ITERATIONS}${encoded[0]}${encoded[1]}"


class BrokerAccounts:
    """The password and ACL files of one broker."""

    def __init__(self, *, password_file: Path, acl_file: Path) -> None:
        self.password_file = password_file
        self.acl_file = acl_file

    def enroll_device(self, device_id: str) -> Credentials:
        """New credentials for ``device_id`` (a new password if it was enrolled before)."""
        if not valid_device_id(device_id):
            raise ConfigError(f"invalid device id {device_id!r}")
        credentials = self._set_password(device_id)
        self._write_acl(self.workers())
        logger.info("device %s enrolled", device_id)
        return credentials

    def enroll_worker(self, name: str) -> Credentials:
        """Credentials for a worker, which may read every device's topics: its account and
        its status connection's (``name`` + :data:`STATUS_ACCOUNT_SUFFIX`), one password."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or name.endswith(STATUS_ACCOUNT_SUFFIX):
            raise ConfigError(f"invalid worker account name {name!r}")
        credentials = self._set_password(name, name + STATUS_ACCOUNT_SUFFIX)
        self._write_acl(self.workers() | {name})
        logger.info("worker account %s enrolled", name)
        return credentials

    def remove(self, username: str) -> bool:
        """Revoke an account (a worker's status account with it); True if it existed."""
        entries = self._entries()
        if entries.pop(username, None) is None:
            return False
        entries.pop(username + STATUS_ACCOUNT_SUFFIX, None)
        self._write_passwords(entries)
        self._write_acl(self.workers() - {username})
        return True

    def verify(self, username: str, password: str) -> bool:
        """Whether ``password`` is the account's (what the broker itself would accept):
        the web app lets a device download its models with its broker credentials."""
        hashed = self._entries().get(username)
        if hashed is None or hashed.count("$") != 4:
            return False
        _, _, iterations, salt, _ = hashed.split("$")
        if iterations != str(PBKDF2_ITERATIONS):
            return False
        try:
            expected = password_hash(password, salt=base64.b64decode(salt, validate=True))
        except ValueError:
            return False
        return hmac.compare_digest(expected, hashed)

    def workers(self) -> set[str]:
        """The worker accounts (their status accounts go with them)."""
        if not self.acl_file.exists():
            return set()
        lines = self.acl_file.read_text().splitlines()
        users = {m.group(1) for line in lines if (m := _WORKER_LINE.match(line.strip()))}
        return {user for user in users if not user.endswith(STATUS_ACCOUNT_SUFFIX)}

    def _set_password(self, *usernames: str) -> Credentials:
        password = secrets.token_urlsafe(24)
        entries = self._entries()
        for username in usernames:
            entries[username] = password_hash(password)
        self._write_passwords(entries)
        return Credentials(usernames[0], password)

    def _entries(self) -> dict[str, str]:
        if not self.password_file.exists():
            return {}
        entries = {}
        for line in self.password_file.read_text().splitlines():
            user, sep, hashed = line.partition(":")
            if sep:
                entries[user] = hashed
        return entries

    def _write_passwords(self, entries: dict[str, str]) -> None:
        _write_private(
            self.password_file, "".join(f"{u}:{h}\n" for u, h in sorted(entries.items()))
        )

    def _write_acl(self, workers: set[str]) -> None:
        blocks = "".join(
            _WORKER_BLOCK.format(name=name)
            + _STATUS_BLOCK.format(name=name + STATUS_ACCOUNT_SUFFIX)
            for name in sorted(workers)
        )
        _write_private(self.acl_file, _ACL_HEADER + blocks)


def reload_broker(pid: int) -> None:
    """Make a running mosquitto reread its password and ACL files (SIGHUP)."""
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise ConfigError(f"cannot signal the broker (pid {pid}): {exc.strerror or exc}") from exc
    logger.info("broker %d told to reload its accounts", pid)


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file only its owner can read (mkstemp's 0600);
    chown it to the broker's user where mosquitto does not run as root."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
