"""A real Milvus standalone server for benchmarks and tests, on free ports in its own dir.

PyPI's ``milvus`` package (2.3.x, "Milvus Lite" before milvus-lite) ships the real
server: the Go binary with knowhere and an embedded etcd, started by ``milvus-server``.
Install it in a virtual environment of its own (it pins old dependencies) and point
``EDGELENS_MILVUS_SERVER`` at its ``milvus-server``, or put that on ``PATH``.

Two instances must not share a port. ``milvus-server`` takes every coordinator and node
port on its command line, but its embedded etcd listens on etcd's defaults (2379 client,
2380 peer) whatever ``--etcd-port`` says: a second server then finds 2379 taken, points
its clients at the next free port, where nothing listens, and rootcoord dies. Milvus
reads ``ETCD_CONFIG_PATH`` from the environment, so an embedded-etcd config file with
the chosen client and peer URLs puts etcd where the clients look. The metrics port
(9091 upward) is picked by ``milvus-server`` itself. The gRPC ports listen on all
interfaces (Milvus has no listen-address setting); clients use 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from edgelens.child_processes import exit_with_this_process

logger = logging.getLogger(__name__)

_PORT_OPTIONS = (
    "--proxy-port",
    "--proxy-internal-port",
    "--root-coord-port",
    "--query-coord-port",
    "--query-node-port",
    "--index-coord-port",
    "--index-node-port",
    "--data-coord-port",
    "--data-node-port",
)


def find_server_executable() -> Path | None:
    """``$EDGELENS_MILVUS_SERVER``, else ``milvus-server`` on ``PATH``, else None."""
    named = os.environ.get("EDGELENS_MILVUS_SERVER")
    if named:
        return Path(named) if Path(named).is_file() else None
    found = shutil.which("milvus-server")
    return Path(found) if found else None


class MilvusServer:
    """``with MilvusServer(exe, data_dir) as server: MilvusIndex(uri=server.uri, ...)``."""

    def __init__(self, executable: Path, data_dir: Path, *, startup_timeout_s: float = 120) -> None:
        self._executable, self._data_dir = Path(executable), Path(data_dir)
        self._timeout = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self.uri = ""
        self.startup_s = 0.0

    def __enter__(self) -> MilvusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        self._data_dir.mkdir(parents=True, exist_ok=True)
        etcd_client, etcd_peer, *ports = _free_ports(2 + len(_PORT_OPTIONS))
        etcd_config = self._data_dir / "embed-etcd.yaml"
        etcd_config.write_text(
            f"listen-client-urls: http://127.0.0.1:{etcd_client}\n"
            f"advertise-client-urls: http://127.0.0.1:{etcd_client}\n"
            f"listen-peer-urls: http://127.0.0.1:{etcd_peer}\n"
            f"initial-advertise-peer-urls: http://127.0.0.1:{etcd_peer}\n"
            f"initial-cluster: default=http://127.0.0.1:{etcd_peer}\n"
        )
        # SIGINT, as stop() sends: milvus-server then stops the server binary it started.
        command = [*exit_with_this_process("INT"), str(self._executable)]
        command += ["--data", str(self._data_dir)]
        command += ["--etcd-port", str(etcd_client)]
        for option, port in zip(_PORT_OPTIONS, ports, strict=True):
            command += [option, str(port)]
        env = dict(os.environ, ETCD_CONFIG_PATH=str(etcd_config))
        log = (self._data_dir / "server.log").open("wb")
        started = time.perf_counter()
        self._process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        self.uri = f"http://127.0.0.1:{ports[0]}"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - started
        logger.info("Milvus up at %s in %.1f s (data %s)", self.uri, self.startup_s, self._data_dir)
        return self.uri

    def stop(self) -> None:
        """SIGINT to milvus-server (it terminates the server), then kill what is left."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):  # the binary, if milvus-server died first
            os.killpg(process.pid, signal.SIGKILL)

    @property
    def pid(self) -> int | None:
        """The ``milvus-server`` launcher's process (None when stopped)."""
        return self._process.pid if self._process is not None else None

    def server_pid(self) -> int | None:
        """The ``milvus run standalone`` process (a child of ``milvus-server``)."""
        if self._process is None:
            return None
        children = Path(f"/proc/{self._process.pid}/task/{self._process.pid}/children")
        pids = children.read_text().split() if children.exists() else []
        return int(pids[0]) if pids else None

    def resident_mb(self) -> float:
        """The server binary's resident set in MB (Linux)."""
        pid = self.server_pid()
        if pid is None:
            return float("nan")
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _wait_ready(self) -> None:
        from pymilvus import MilvusClient

        assert self._process is not None
        deadline = time.monotonic() + self._timeout
        port = int(self.uri.rsplit(":", 1)[1])
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"milvus-server exited ({self._process.returncode}); "
                    f"see {self._data_dir / 'server.log'} and {self._data_dir / 'logs'}"
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                client = MilvusClient(self.uri, timeout=10)
                client.list_collections()
                client.close()
                return
            except Exception:  # not up yet: refused, unavailable, not ready
                time.sleep(0.5)
        raise TimeoutError(f"Milvus did not start in {self._timeout:.0f} s ({self._data_dir})")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free now (the kernel's pick, held until all chosen)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
