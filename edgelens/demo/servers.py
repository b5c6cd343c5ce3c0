"""redis-server and mosquitto run in the foreground under our own supervision.

The demo and the tests start private instances on free loopback ports and stop
them on exit, so nothing depends on (or disturbs) a system service. mosquitto is
never started with ``-d``: daemonised, it exits silently on some machines.
"""

from __future__ import annotations

import getpass
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from edgelens.child_processes import exit_with_this_process
from edgelens.errors import ServerError
from edgelens.lifecycle import Lifecycle

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ManagedServer(Lifecycle):
    """One supervised server process on a loopback port; a context manager."""

    name = "server"
    executable = ""
    user: str | None = None  # the account it runs as (a server that refuses root's)

    def __init__(self, port: int | None = None, workdir: Path | None = None) -> None:
        self.port = port or free_port()
        self._tmp = (
            None if workdir else tempfile.TemporaryDirectory(prefix=f"edgelens-{self.name}-")
        )
        self.workdir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self.workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which(self.executable) or next(
            (
                p
                for p in (f"/usr/sbin/{self.executable}", f"/usr/bin/{self.executable}")
                if Path(p).exists()
            ),
            None,
        )
        if binary is None:
            raise ServerError(f"{self.executable} not found; run `make setup` (apt-get install)")
        cmd = [*exit_with_this_process(), binary, *self.command()]
        with self._log.open("ab") as log:
            # Its own session: a terminal's Ctrl-C (sent to the whole foreground process
            # group) reaches only us, and we stop the server after the parts that use it.
            self._process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, user=self.user
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise ServerError(f"{self.name} exited at start: {self._log.read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                logger.info("%s listening on 127.0.0.1:%d", self.name, self.port)
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.name} did not listen on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        logger.info("%s on port %d stopped", self.name, self.port)
        self._process = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


class RedisServer(ManagedServer):
    """redis-server in the foreground, without persistence; with ``password``, clients
    must authenticate (``requirepass``), as in production."""

    name = "redis"
    executable = "redis-server"

    def __init__(
        self, port: int | None = None, workdir: Path | None = None, *, password: str | None = None
    ) -> None:
        super().__init__(port, workdir)
        self.password = password

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        auth = ["--requirepass", self.password] if self.password else []
        return [
            *auth,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
        ]


@dataclass(frozen=True)
class BrokerTls:
    """A TLS listener: the server's certificate and key, and the CA clients are checked
    against when ``require_certificate`` (client certificates) is on."""

    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = False


# Largest publish payload the broker passes on: a little above a feature message's largest
# (edgelens.wire.features.MAX_MESSAGE_BYTES, 197,155 bytes), so the worker still counts
# the few in between as oversized.
MESSAGE_SIZE_LIMIT = 200_000
# Largest packet a client may send: a publish above message_size_limit by more than its
# topic and header ends the connection before it is read. No device sends one, so a client
# that does pays a reconnect for each, instead of the broker reading it all to drop it.
MAX_PACKET_SIZE = MESSAGE_SIZE_LIMIT + 1024


class MosquittoServer(ManagedServer):
    """mosquitto in the foreground; open to anyone on loopback, or, given a password and
    an ACL file (see edgelens.broker.accounts), only to enrolled accounts, optionally
    with a TLS listener too. Its limits are docs/security.md's; ``max_packet_size`` and
    ``tcp_nodelay`` take other values only for a benchmark to compare with."""

    name = "mosquitto"
    executable = "mosquitto"

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        *,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        tls: BrokerTls | None = None,
        max_packet_size: int = MAX_PACKET_SIZE,
        tcp_nodelay: bool = True,
    ) -> None:
        super().__init__(port, workdir)
        self.password_file = password_file
        self.acl_file = acl_file
        self.tls = tls
        self.max_packet_size = max_packet_size
        self.tcp_nodelay = tcp_nodelay

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        lines = [
            # Stay the user that started it (as root mosquitto would switch to "mosquitto",
            # which cannot read account files only their owner may read).
            f"user {getpass.getuser()}",
            "per_listener_settings false",
            "persistence false",
            # What one client may cost the broker: a publish above message_size_limit is
            # dropped (the worker's own limit, MAX_MESSAGE_BYTES, is a little lower), a
            # packet above max_packet_size ends the connection before it is read into
            # memory, and a slow subscriber's queue is bounded in messages and bytes.
            f"message_size_limit {MESSAGE_SIZE_LIMIT}",
            f"max_packet_size {self.max_packet_size}",
            "max_inflight_messages 20",
            "max_queued_messages 100",
            "max_queued_bytes 1048576",
        ]
        # Nagle's algorithm off: under a flood another device's small frame otherwise waits
        # behind unacknowledged bytes to the worker, up to a delayed ACK.
        lines += ["set_tcp_nodelay true"] if self.tcp_nodelay else []
        # With accounts, the client id is the account: a device cannot connect with another's
        # id and so push it off the broker (which would publish its "offline" will). A
        # listener's own setting on mosquitto 2: before any listener it would open 1883.
        per_listener = ["use_username_as_clientid true"] if self.password_file else []
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
            if self.acl_file is not None:
                lines.append(f"acl_file {self.acl_file}")
        else:
            lines.append("allow_anonymous true")
        lines += [f"listener {self.port} 127.0.0.1", *per_listener]
        if self.tls is not None:
            lines += [
                f"listener {self.tls.port} 127.0.0.1",
                *per_listener,
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
                f"require_certificate {str(self.tls.require_certificate).lower()}",
            ]
        config = self.workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return ["-c", str(config)]
