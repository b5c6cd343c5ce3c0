"""The worker's broker connections (edgelens.cloud.transport.Ingress) against a real mosquitto
that is not there yet."""

from __future__ import annotations

import logging
import threading
import time

from pydantic import AnyUrl

from edgelens.cloud.metrics import Counts
from edgelens.cloud.reject_log import RejectLog
from edgelens.cloud.transport import Ingress
from edgelens.demo.servers import MosquittoServer, free_port
from edgelens.testing.live import wait_for

UNREACHABLE = "not reachable; retrying with backoff"


def test_a_broker_that_is_not_there_is_said_once_and_then_its_arrival(settings, caplog, tmp_path):
    """Started before its broker, the worker says so once, whatever paho's retries (a try
    every 0.5-1 s here), and says when it connects."""
    port = free_port()
    worker = settings.worker.model_copy(update={"reconnect_max_s": 1.0})
    settings = settings.model_copy(
        update={"mqtt_url": AnyUrl(f"mqtt://127.0.0.1:{port}"), "worker": worker}
    )
    stop = threading.Event()
    logger = logging.getLogger("edgelens.cloud.transport")
    ingress = Ingress(settings, stats=Counts(), rejects=RejectLog(logger), stop=stop)
    caplog.set_level(logging.INFO, logger="edgelens.cloud.transport")
    ingress.start()
    try:
        time.sleep(3)  # several tries
        said = [r.getMessage() for r in caplog.records if UNREACHABLE in r.getMessage()]
        assert said == [f"broker 127.0.0.1:{port} {UNREACHABLE}"]
        with MosquittoServer(port=port, workdir=tmp_path / "mosquitto"):
            wait_for(ingress.subscribed.is_set, timeout=15)
            connected = [r.getMessage() for r in caplog.records if "connected to" in r.getMessage()]
            assert connected == [
                f"connected to the broker 127.0.0.1:{port}; subscribing as "
                f"group {settings.worker.share_group}"
            ]
            stop.set()  # stopping now: the broker going away next is no outage to report
    finally:
        stop.set()
        ingress.stop()
    assert sum(UNREACHABLE in r.getMessage() for r in caplog.records) == 1
