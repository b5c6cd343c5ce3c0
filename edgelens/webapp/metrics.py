"""Prometheus metrics of the dashboard: requests by route and status, their duration,
and the live event streams open now. A pure ASGI middleware, so server-sent event
streams pass through untouched (a streaming response is timed until it ends)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
# Labels take only known values, so no request can add series: any other method is
# "other", and a path no route matches is "unmatched" (routes are their templates).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "unmatched"


class WebMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "edgelens_web_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "edgelens_web_request_seconds",
            "Time to answer a request (whole stream for event streams).",
            ["route"],
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self.live_streams = Gauge(
            "edgelens_web_live_streams",
            "Server-sent event streams open now (dashboards watching).",
            registry=self.registry,
        )


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: WebMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        streaming = False
        started = time.perf_counter()

        async def record(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                streaming = headers.get(b"content-type", b"").startswith(b"text/event-stream")
                if streaming:
                    self.metrics.live_streams.inc()
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            if streaming:
                self.metrics.live_streams.dec()
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            method = scope["method"] if scope["method"] in METHODS else OTHER_METHOD
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.duration.labels(route).observe(time.perf_counter() - started)
