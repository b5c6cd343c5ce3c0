"""The worker: MQTT shared subscription → bounded queues → answer → Redis.

This module is the lifecycle only: :class:`Worker` composes the transport
(:mod:`edgelens.cloud.transport`: MQTT in, statuses and records out to Redis) and the
serving (:mod:`edgelens.cloud.serving`: the model, its index and the threads that answer
with them), starts them, serves /metrics and /healthz, and stops them all on one stop
event, in an order that lets the last answers reach Redis.
"""

from __future__ import annotations

import logging
import threading
import time

from edgelens.catalog.store import CatalogStore
from edgelens.cloud.catalog_follower import CatalogFollower
from edgelens.cloud.metrics import Counts, MetricsServer, WorkerMetrics
from edgelens.cloud.reject_log import RejectLog
from edgelens.cloud.serving import Answering, ConfirmBacklog, Models
from edgelens.cloud.sink import RedisSink
from edgelens.cloud.stages import Inbound, Outgoing
from edgelens.cloud.transport import Ingress, Pusher, StatusRelay
from edgelens.search.base import VectorIndex
from edgelens.settings import Settings, require_secrets

logger = logging.getLogger(__name__)


class Worker:
    def __init__(self, settings: Settings) -> None:
        require_secrets(settings, mqtt=True, redis=True)
        self._settings = settings
        self._store = CatalogStore(settings.catalog_url)
        self._stop = threading.Event()
        self.stats = Counts()
        rejects = RejectLog(logger)  # one for every stage: each reason said once per interval
        self._sink = RedisSink(
            str(settings.redis_url),
            matches_kept=settings.worker.matches_kept,
            views_kept_s=settings.worker.views_kept_s,
        )
        self._ingress = Ingress(settings, stats=self.stats, rejects=rejects, stop=self._stop)
        self._models = Models(
            settings, store=self._store, stop=self._stop, offer=self._ingress.offer_model
        )
        self.subscribed = self._ingress.subscribed
        self._relay = StatusRelay(
            self._ingress.statuses,
            sink=self._sink,
            stats=self.stats,
            rejects=rejects,
            stop=self._stop,
        )
        self._confirms = ConfirmBacklog()
        self.metrics = WorkerMetrics(
            counts=self.stats.snapshot,
            queue_length=self._ingress.frames.__len__,
            confirm_backlog=self._confirms.__len__,
            devices_online=self._relay.devices_online,
        )
        self._metrics_server: MetricsServer | None = None
        self._pusher = Pusher(sink=self._sink, stats=self.stats, metrics=self.metrics)
        self._answering = Answering(
            self._models,
            frames=self._ingress.frames,
            confirms=self._confirms,
            push=self._pusher.put,
            stats=self.stats,
            rejects=rejects,
            math_threads=settings.worker.math_threads,
            stop=self._stop,
        )

    @property
    def model_id(self) -> str:
        return self._models.current.manifest.model_id

    @property
    def index(self) -> VectorIndex:
        return self._models.current.matcher.index

    @property
    def catalog(self) -> CatalogFollower:
        return self._models.current.follower

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """Where /metrics and /healthz answer; None if the port could not be bound."""
        return self._metrics_server.address if self._metrics_server else None

    def health(self) -> tuple[bool, dict[str, object]]:
        """Healthy while subscribed to the broker and Redis takes writes; with details."""
        detail: dict[str, object] = {
            "mqtt_subscribed": self.subscribed.is_set(),
            "redis_ok": not self._pusher.redis_down,
            "model_id": self.model_id,
            # During a rollout: the model also served, for the devices that run it already.
            "rollout_to": self._models.rolling_out,
            "catalog_items": len(self.index),
            "catalog_change": self.catalog.applied_seq,
            # On a shared index (Milvus): whether this worker is the one that writes it.
            "index_writer": self.catalog.lease.held if self.catalog.lease else None,
            "queue_length": len(self._ingress.frames),
            "confirm_backlog": len(self._confirms),
        }
        return bool(detail["mqtt_subscribed"] and detail["redis_ok"]), detail

    def start(self) -> None:
        self._start_metrics()
        self._models.start()
        self._answering.start()
        self._relay.start()
        self._pusher.start()
        self._ingress.start()
        logger.info(
            "worker started: model %s, %d catalog items, group %s",
            self.model_id,
            len(self.index),
            self._settings.worker.share_group,
        )

    def _start_metrics(self) -> None:
        cfg = self._settings.worker
        try:
            self._metrics_server = MetricsServer(
                host=cfg.metrics_host,
                port=cfg.metrics_port,
                metrics=self.metrics,
                health=self.health,
            )
        except OSError as exc:  # matching matters more than being observed
            logger.error(
                "no /metrics: cannot listen on %s:%d (%s); set worker.metrics_port",
                cfg.metrics_host,
                cfg.metrics_port,
                exc,
            )
            return
        self._metrics_server.start()

    def stop(self) -> None:
        self._stop.set()
        if self._metrics_server is not None:
            self._metrics_server.stop()
        self._ingress.stop()
        self._models.close()
        for stage in (self._answering, self._relay, self._models):
            stage.join()
        self._pusher.stop()  # after the match loop: its last records go out
        self._sink.close()
        self._store.close()
        logger.info("worker stopped: %s", self.stats.snapshot())

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    def request_stop(self) -> None:
        self._stop.set()

    def swap_model_if_changed(self) -> bool:
        return self._models.swap_if_changed()

    def handle_message(
        self, topic: str, payload: bytes, *, received_at: float | None = None
    ) -> None:
        """Handle one message in the caller's thread, exactly as the MQTT path does after
        its queue, the push to Redis included (the fuzz tests drive this)."""
        inbound = Inbound(topic, payload, time.time() if received_at is None else received_at)
        if topic.endswith("/status"):
            self._relay.record([inbound])
            return

        def push(out: Outgoing) -> None:
            self._pusher.push([out])

        job = self._answering.first(inbound, push)
        if job is not None:
            self._answering.confirm(job, push)
