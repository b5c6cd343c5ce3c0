"""A private PostgreSQL for tests and benchmarks: a fresh cluster in a temporary folder,
on a free loopback port, run as an unprivileged user (PostgreSQL refuses root), stopped
and removed afterwards. Each caller takes a database of its own."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from pathlib import Path

from edgelens.demo.servers import ManagedServer
from edgelens.errors import ServerError

_ROLE = "edgelens"
_UNPRIVILEGED = "nobody"
_INITDB = ("--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
# Room for every worker and pool a test starts; a test server also goes without
# durability (a durable one keeps PostgreSQL's defaults: a flush to disk per commit).
_SETTINGS = ("-c", "max_connections=300")
_NOT_DURABLE = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")


def postgres_bin_dir() -> Path:
    """Where Debian's ``postgresql`` put its server programs (newest major version)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=_major)
    if found:
        return found[-1].parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).resolve().parent
    raise ServerError("postgres not found; run `make setup` (apt-get install postgresql)")


def _major(path: Path) -> int:
    version = path.parent.parent.name
    return int(version) if version.isdigit() else 0


class PostgresServer(ManagedServer):
    """postgres in the foreground; trust authentication on loopback only; without
    durability (fsync off: a test server) unless ``durable``, as a production one runs."""

    name = "postgresql"

    def __init__(
        self, port: int | None = None, workdir: Path | None = None, *, durable: bool = False
    ) -> None:
        super().__init__(port, workdir)
        self.durable = durable
        self._bin = postgres_bin_dir()
        self.executable = str(self._bin / "postgres")
        self.user = _UNPRIVILEGED if os.getuid() == 0 else None
        self._data = self.workdir / "data"
        self._names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{_ROLE}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> None:
        if self.user is not None:
            shutil.chown(self.workdir, self.user)
        if not (self._data / "PG_VERSION").exists():
            result = subprocess.run(
                [self._bin / "initdb", "-D", self._data, "-U", _ROLE, *_INITDB],
                capture_output=True,
                text=True,
                user=self.user,
                check=False,
            )
            if result.returncode:
                raise ServerError(f"initdb failed: {result.stderr[-500:]}")
        super().start(timeout)
        self._wait_ready(timeout)

    def command(self) -> list[str]:
        where = ["-D", str(self._data), "-p", str(self.port), "-h", "127.0.0.1"]
        durability = () if self.durable else _NOT_DURABLE
        return [*where, "-k", str(self.workdir), *_SETTINGS, *durability]

    def new_database(self, prefix: str = "catalog") -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _wait_ready(self, timeout: float) -> None:
        """The port opens before the server takes queries: wait until it does."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServerError(f"postgresql not ready: {exc}") from exc
                time.sleep(0.1)
