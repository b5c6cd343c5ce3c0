"""``edgelens demo`` as a terminal runs it: one banner on the console, the log lines in its
file without library noise, a clean stop on Ctrl-C with a dashboard tab open, and its
dashboard flags."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from typer.testing import CliRunner

from edgelens.cli.context import configure_logging
from edgelens.cli.main import app as cli_app
from edgelens.demo.runner import browse_host, lan_address
from edgelens.demo.servers import free_port

REPO = Path(__file__).resolve().parents[2]


def test_demo_shows_one_banner_after_its_logs_and_stops_cleanly_on_ctrl_c(
    demo_data_dir, models_dir
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGELENS_")}
    env.update(
        EDGELENS_DATA_DIR=str(demo_data_dir),
        EDGELENS_MODELS_DIR=str(models_dir),
        EDGELENS_FEATURIZER__PROVIDERS='["cpu"]',
        EDGELENS_WORKER__METRICS_PORT="0",
    )
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "edgelens", "demo", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order a terminal shows it
        text=True,
        env=env,
        cwd=REPO,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    log_file = demo_data_dir / "demo" / "demo.log"
    tab = socket.socket()
    try:
        deadline = time.monotonic() + 120
        while not any(line.startswith("  stop:") for line in lines):
            assert demo.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)
        log_at_banner = log_file.read_text()
        # A dashboard tab left open: its live stream is held while Ctrl-C stops the demo.
        tab.settimeout(10)
        tab.connect(("127.0.0.1", port))
        tab.sendall(b"GET /api/devices/demo-cam/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert tab.recv(64).startswith(b"HTTP/1.1 200"), "the stream is open"
    finally:
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group gets it
        code = demo.wait(timeout=60)
        reader.join(10)
        tab.close()
    output = "".join(lines)
    assert code == 0, output
    # The console is for the person: the banner and the goodbye, the log lines in the file.
    assert [line.strip() for line in lines if line.strip()] == [
        "edgelens demo is running",
        f"dashboard: http://127.0.0.1:{port}/devices/demo-cam",
        lines[3].strip(),  # the sign-in, checked below
        f"log:       {log_file}",
        "stop:      Ctrl-C",
        "demo stopped",
    ], output
    username, slash, password, *_ = lines[3].split()[2:]
    assert (username, slash) == ("demo", "/") and len(password) >= 12
    log = log_file.read_text()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log
    assert "faiss" not in log, "library noise at start"
    assert "WARNING" not in log and password not in log
    # The banner ends start-up: the device was up before it.
    assert "demo/camera.avi opened (looping)" in log_at_banner, log_at_banner
    # Ctrl-C stops the parts in order: the device goes offline before the broker stops.
    stopping = log.split("SIGINT received; stopping", 1)[1]
    assert stopping.index("device demo-cam offline") < stopping.index("mosquitto on port")
    assert "lost the broker" not in stopping and " ERROR " not in stopping


def test_demo_port_taken_is_an_error_before_anything_starts(settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli_app, ["demo", "--port", str(port)])
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert f"error: port {port} on 127.0.0.1 is taken" in said
    assert not (settings.data_dir / "demo").exists(), "no server was started"


def test_cli_logging_keeps_faiss_loader_lines_for_debug():
    faiss = logging.getLogger("faiss.loader")
    try:
        configure_logging("INFO")
        assert not faiss.isEnabledFor(logging.INFO)
        assert faiss.isEnabledFor(logging.WARNING)
        assert logging.getLogger("edgelens.demo").isEnabledFor(logging.INFO)
        configure_logging("DEBUG")
        assert faiss.isEnabledFor(logging.INFO)
    finally:
        logging.getLogger("faiss").setLevel(logging.NOTSET)


def test_banner_addresses_for_this_machine_and_the_network():
    assert browse_host("0.0.0.0") == browse_host("") == browse_host("::") == "127.0.0.1"
    assert browse_host("::1") == "[::1]" and browse_host("shop.lan") == "shop.lan"
    address = lan_address()  # None on a machine without a network
    assert address is None or not ipaddress.ip_address(address).is_loopback
