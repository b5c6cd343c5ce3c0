"""The worker's counters, and its Prometheus metrics and health answer on a small HTTP server.

Every stage counts what it does in one :class:`Counts` (messages by outcome, refusals by
reason), which ``GET /metrics`` reports in the Prometheus text format beside timings and
queue lengths. ``GET /healthz`` answers 200 with a JSON summary while the worker is
subscribed to the broker and Redis takes its writes, and 503 (same JSON) otherwise, so
an orchestrator can restart or route around it. Each worker has its own registry, so
several workers in one process (tests) never mix.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SEARCH_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)
END_TO_END_BUCKETS_S = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Counts:
    """Thread-safe named counters: received, matched, rejected by reason, dropped, ..."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class _CountsCollector(Collector):
    """The worker's counters as two families: messages by outcome, refusals by reason."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        outcomes = CounterMetricFamily(
            "edgelens_worker_messages",
            "Feature messages by outcome: received, matched (first answer pushed), dropped "
            "(queue full), view_refused (its view not a small JPEG: answered without it), "
            "redis_errors, errors_unexpected; stage two: confirm_queued, "
            "confirm_same_view (already confirmed), confirm_superseded (a newer view came), "
            "confirm_dropped (backlog full), confirmed, confirm_unplaced (first answer "
            "trimmed), confirm_unusable_view.",
            labels=["outcome"],
        )
        rejected = CounterMetricFamily(
            "edgelens_worker_rejected",
            "Messages refused, by reason (malformed, wrong_model, replayed, ...).",
            labels=["reason"],
        )
        for name, value in sorted(self._counts().items()):
            if name.startswith("rejected_"):
                rejected.add_metric([name.removeprefix("rejected_")], value)
            elif name != "push_us":
                outcomes.add_metric([name], value)
        yield outcomes
        yield rejected


class WorkerMetrics:
    def __init__(
        self,
        *,
        counts: Callable[[], dict[str, int]],
        queue_length: Callable[[], int],
        confirm_backlog: Callable[[], int],
        devices_online: Callable[[], int],
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_CountsCollector(counts))
        self.search_seconds = Histogram(
            "edgelens_worker_search_seconds",
            "Decode and k-NN search time of one message.",
            buckets=SEARCH_BUCKETS_S,
            registry=self.registry,
        )
        self.end_to_end_seconds = Histogram(
            "edgelens_worker_end_to_end_seconds",
            "From the frame's capture on the device to its match written to Redis "
            "(device and worker clocks; featurizing included).",
            buckets=END_TO_END_BUCKETS_S,
            registry=self.registry,
        )
        Gauge(
            "edgelens_worker_queue_length",
            "Messages waiting for the match loop.",
            registry=self.registry,
        ).set_function(queue_length)
        Gauge(
            "edgelens_worker_confirm_backlog",
            "Views waiting for stage two (verification), at most one per device.",
            registry=self.registry,
        ).set_function(confirm_backlog)
        Gauge(
            "edgelens_worker_devices_online",
            "Devices whose last status said online.",
            registry=self.registry,
        ).set_function(devices_online)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """Serves /metrics and /healthz in a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        metrics: WorkerMetrics,
        health: Callable[[], tuple[bool, dict[str, object]]],
    ) -> None:
        handler = _handler(metrics, health)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="worker-metrics", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        logger.info("metrics and health on http://%s:%d/metrics, /healthz", *self.address)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(
    metrics: WorkerMetrics, health: Callable[[], tuple[bool, dict[str, object]]]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._answer(200, CONTENT_TYPE, metrics.exposition())
            elif self.path == "/healthz":
                healthy, detail = health()
                body = json.dumps({"status": "ok" if healthy else "unavailable", **detail})
                self._answer(200 if healthy else 503, "application/json", body.encode())
            else:
                self._answer(404, "text/plain", b"not found: try /metrics or /healthz\n")

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            logger.debug("metrics request: %s", format % args)

    return Handler
