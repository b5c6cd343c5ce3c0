"""The worker: MQTT shared subscription → bounded queue → match → Redis.

Three small stages, each with a stop event and a clean exit log:
the paho network thread only enqueues (dropping the oldest message when the
queue is full: for live matching the newest frame wins), one matching thread
decodes, searches and pushes, and a catalog watcher swaps in a fresh index when
the catalog version changes, so items added or removed are searched (or not)
without a restart.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import paho.mqtt.client as mqtt

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.catalog_follower import CatalogFollower
from edgelens.cloud.matcher import Matcher, RejectedMessage
from edgelens.cloud.metrics import MetricsServer, WorkerMetrics
from edgelens.cloud.reject_log import RejectLog
from edgelens.cloud.sequence_guard import SequenceGuard
from edgelens.cloud.sink import RedisSink
from edgelens.errors import EdgelensError, ModelError, RedisUnavailableError
from edgelens.featurizer import local_features
from edgelens.featurizer.local_features import LocalFeatures
from edgelens.featurizer.manifest import (
    ModelManifest,
    all_manifests,
    load_manifest,
    searchable_against,
)
from edgelens.featurizer.runtime import load_featurizer
from edgelens.search.base import SearchFilter, VectorIndex
from edgelens.search.loader import open_index, save_if_persistent
from edgelens.settings import Settings, require_secrets
from edgelens.wire.features import MAX_MESSAGE_BYTES
from edgelens.wire.mqtt import connect_async, make_client
from edgelens.wire.names import (
    FEATURES_WILDCARD,
    STATUS_WILDCARD,
    device_of_topic,
    shared_subscription,
)
from edgelens.wire.records import MatchRecord

logger = logging.getLogger(__name__)

QUEUE_SIZE = 64
# Most records written to Redis in one pipeline when they queued up.
PUSH_BATCH = 32
# A device status is a small JSON object; anything larger is refused unparsed.
MAX_STATUS_BYTES = 4096


@dataclass(frozen=True)
class _Inbound:
    topic: str
    payload: bytes
    received_at: float  # wall clock, comparable with the device's captured_at


class _Pending:
    """Messages waiting in the match queue, per topic: a message with a newer one from the
    same device behind it is superseded (the screen shows the newest record), so the match
    thread skips its verification, the slow step, rather than let the queue grow."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, topic: str) -> None:
        with self._lock:
            self._counts[topic] += 1

    def take(self, topic: str) -> bool:
        """One message of ``topic`` leaves the queue; True if a newer one still waits."""
        with self._lock:
            self._counts[topic] -= 1
            newer = self._counts[topic] > 0
            if not newer:
                del self._counts[topic]
            return newer


class WorkerStats:
    """Thread-safe counters: received, matched, rejected by reason, dropped, redis errors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclass(frozen=True)
class _Serving:
    """What answers messages now: one model's index, its matcher and catalog follower.

    Replaced as a whole (one reference assignment) when the model changes, so a message
    is always matched against one consistent model and index.
    """

    manifest: ModelManifest
    matcher: Matcher
    follower: CatalogFollower


class Worker:
    def __init__(self, settings: Settings) -> None:
        require_secrets(settings, mqtt=True, redis=True)
        self._settings = settings
        self._recipe = CatalogRecipe(settings.catalog.views)
        self._store = CatalogStore(settings.catalog_db)
        self._filters = SearchFilter(
            min_price=settings.search.min_price,
            max_price=settings.search.max_price,
            available_only=settings.search.available_only,
        )
        self._sequence = SequenceGuard()
        self._rejects = RejectLog(logger)
        self._serving = self._serve(self._configured_model())
        self._waiting_for: str | None = None
        self._sink = RedisSink(str(settings.redis_url), matches_kept=settings.worker.matches_kept)
        self._queue: queue.Queue[_Inbound] = queue.Queue(maxsize=QUEUE_SIZE)
        self._pending = _Pending()
        self._stop = threading.Event()
        self._redis_down = False
        self.stats = WorkerStats()
        self.subscribed = threading.Event()
        self._device_states: dict[str, str] = {}
        self.metrics = WorkerMetrics(
            counts=self.stats.snapshot,
            queue_length=self._queue.qsize,
            # A copy: the network thread may add a device while /metrics is scraped.
            devices_online=lambda: list(self._device_states.values()).count("online"),
        )
        self._metrics_server: MetricsServer | None = None
        self._client = make_client(
            str(settings.mqtt_url),
            client_id=f"edgelens-worker-{uuid.uuid4().hex[:8]}",
            tls=settings.mqtt_tls,
            reconnect_min_s=min(0.5, settings.worker.reconnect_max_s),
            reconnect_max_s=settings.worker.reconnect_max_s,
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        # Matched records waiting for Redis; None ends the push thread.
        self._pushes: queue.Queue[MatchRecord | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._threads = [
            threading.Thread(target=self._match_loop, name="worker-match", daemon=True),
            threading.Thread(target=self._watch_model, name="worker-model", daemon=True),
        ]
        self._push_thread = threading.Thread(
            target=self._push_loop, name="worker-push", daemon=True
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self._serving.manifest.model_id

    @property
    def index(self) -> VectorIndex:
        return self._serving.matcher.index

    @property
    def catalog(self) -> CatalogFollower:
        return self._serving.follower

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """Where /metrics and /healthz answer; None if the port could not be bound."""
        return self._metrics_server.address if self._metrics_server else None

    def health(self) -> tuple[bool, dict[str, object]]:
        """Healthy while subscribed to the broker and Redis takes writes; with details."""
        detail: dict[str, object] = {
            "mqtt_subscribed": self.subscribed.is_set(),
            "redis_ok": not self._redis_down,
            "model_id": self.model_id,
            "catalog_items": len(self.index),
            "catalog_change": self.catalog.applied_seq,
            # On a shared index (Milvus): whether this worker is the one that writes it.
            "index_writer": self.catalog.lease.held if self.catalog.lease else None,
            "queue_length": self._queue.qsize(),
        }
        return bool(detail["mqtt_subscribed"] and detail["redis_ok"]), detail

    def start(self) -> None:
        self._start_metrics()
        self.catalog.start()
        for thread in self._threads:
            thread.start()
        self._push_thread.start()
        connect_async(self._client, str(self._settings.mqtt_url))
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
        self._client.disconnect()
        self._client.loop_stop()
        self.catalog.stop()
        close = getattr(self.index, "close", None)  # a vector database's connection
        if close is not None:
            close()
        save_if_persistent(
            self.index,
            recipe=self._recipe,
            index_dir=self._settings.index_dir,
            change_seq=self.catalog.applied_seq,
        )
        for thread in self._threads:
            if thread.is_alive():  # a worker driven only through handle_message never started
                thread.join(timeout=5)
        if self._push_thread.is_alive():  # after the match loop: its last records go out
            self._pushes.put(None)
            self._push_thread.join(timeout=5)
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

    # -- MQTT callbacks (network thread: enqueue only) ----------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            logger.warning("broker refused the worker: %s", reason_code)
            return
        group = self._settings.worker.share_group
        client.subscribe([(shared_subscription(group, FEATURES_WILDCARD), 0), (STATUS_WILDCARD, 1)])
        logger.info("connected to the broker; subscribing as group %s", group)

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _props) -> None:
        failed = [code for code in reason_codes if code.is_failure]
        if failed:
            logger.error("subscription refused: %s", failed)
        else:
            self.subscribed.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props) -> None:
        self.subscribed.clear()
        if not self._stop.is_set():
            logger.warning("lost the broker (%s); reconnecting with backoff", reason_code)

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        inbound = _Inbound(message.topic, bytes(message.payload), time.time())
        if message.topic.endswith("/status"):
            self._handle_status(inbound)
            return
        self.stats.add("received")
        if len(inbound.payload) > MAX_MESSAGE_BYTES:
            self.stats.add("rejected_oversized")
            self._rejects.warn(
                "oversized",
                "rejected message on %s: %d bytes (at most %d)",
                message.topic,
                len(inbound.payload),
                MAX_MESSAGE_BYTES,
            )
            return
        self._pending.add(inbound.topic)
        while True:
            try:
                self._queue.put_nowait(inbound)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()  # the oldest frame is the least useful
                    self._pending.take(dropped.topic)
                    self.stats.add("dropped")
                except queue.Empty:
                    pass

    # -- stages ------------------------------------------------------------------------------

    def _match_loop(self) -> None:
        _limit_math_threads(self._settings.worker.math_threads)  # OpenMP's limit is per thread
        while not self._stop.is_set():
            try:
                inbound = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            superseded = self._pending.take(inbound.topic)
            if superseded:
                self.stats.add("verify_skipped")
            self._process_safely(inbound, self._pushes.put, verify=not superseded)
        logger.info("match loop exits")

    def _push_loop(self) -> None:
        """Writes matched records to Redis beside the match loop, so a search never waits
        on a Redis round trip; records that queued up meanwhile go in one pipeline."""
        while True:
            record = self._pushes.get()
            batch = [record] if record is not None else []
            while record is not None and len(batch) < PUSH_BATCH:
                try:
                    record = self._pushes.get_nowait()
                except queue.Empty:
                    break
                if record is not None:
                    batch.append(record)
            if batch:
                self._push(batch)
            if record is None:
                logger.info("push loop exits")
                return

    def handle_message(
        self, topic: str, payload: bytes, *, received_at: float | None = None
    ) -> None:
        """Handle one message in the caller's thread, exactly as the MQTT path does after
        its queue, the push to Redis included (the fuzz tests drive this)."""
        inbound = _Inbound(topic, payload, time.time() if received_at is None else received_at)
        if topic.endswith("/status"):
            self._handle_status(inbound)
        else:
            self._process_safely(inbound, lambda record: self._push([record]))

    def _process_safely(
        self, inbound: _Inbound, push: Callable[[MatchRecord], None], *, verify: bool = True
    ) -> None:
        try:
            record = self._serving.matcher.match(
                inbound.topic, inbound.payload, received_at=inbound.received_at, verify=verify
            )
        except RejectedMessage as exc:
            self.stats.add(f"rejected_{exc.reason}")
            self._rejects.warn(exc.reason, "rejected message on %s: %s", inbound.topic, exc)
            return
        except Exception:  # a bug must cost one message, never the worker
            self.stats.add("errors_unexpected")
            logger.exception("unexpected error on a message of %s", inbound.topic)
            return
        push(record)

    def _push(self, records: list[MatchRecord]) -> None:
        started = time.perf_counter()
        try:
            self._sink.push(records)
        except RedisUnavailableError as exc:
            self.stats.add("redis_errors", len(records))
            if not self._redis_down:
                logger.error("cannot push matches, will keep trying: %s", exc)
            self._redis_down = True
            return
        except Exception:  # a bug must cost these records, never the worker
            self.stats.add("errors_unexpected", len(records))
            logger.exception("unexpected error pushing %d record(s)", len(records))
            return
        if self._redis_down:
            logger.info("redis is back; pushing matches again")
            self._redis_down = False
        self.stats.add("matched", len(records))
        self.stats.add("push_us", int((time.perf_counter() - started) * 1e6))
        now = time.time()
        for record in records:
            self.metrics.search_seconds.observe(
                (record.stages_ms["decode"] + record.stages_ms["search"]) / 1000
            )
            self.metrics.end_to_end_seconds.observe(max(0.0, now - record.captured_at))

    def _handle_status(self, inbound: _Inbound) -> None:
        device_id = device_of_topic(inbound.topic)
        try:
            if len(inbound.payload) > MAX_STATUS_BYTES:
                raise ValueError(f"{len(inbound.payload)} bytes, at most {MAX_STATUS_BYTES}")
            status = json.loads(inbound.payload)
            if device_id is None or not isinstance(status, dict):
                raise ValueError("expected a JSON object on a device status topic")
        except ValueError as exc:
            self.stats.add("rejected_bad_status")
            self._rejects.warn("bad_status", "bad status on %s: %s", inbound.topic, exc)
            return
        self._device_states[device_id] = str(status.get("state"))
        try:
            self._sink.device_status(device_id, status)
        except RedisUnavailableError as exc:
            self.stats.add("redis_errors")
            logger.error("cannot record status of %s: %s", device_id, exc)

    # -- model changes -----------------------------------------------------------------------

    def _configured_model(self) -> ModelManifest:
        cfg = self._settings.featurizer
        return load_manifest(self._settings.model_path, cfg.precision, cfg.pooling)

    def _item_local_features(self, item_id: str) -> LocalFeatures | None:
        """Read from the catalog each time (one row per candidate): never stale after an
        item's photo changes, and nothing held in memory at a million items."""
        return self._store.item_local_features(item_id, local_features.METHOD_ID)

    def _view_featurizer(
        self, manifest: ModelManifest
    ) -> Callable[[Sequence[np.ndarray]], np.ndarray] | None:
        """``manifest``'s model on a focus view's boxes, one batch; None, and said, if the
        model cannot be loaded here (the frames' vectors still answer)."""
        try:
            # as many threads as the worker's other maths: one message at a time
            featurizer = load_featurizer(
                self._settings, manifest, threads=self._settings.worker.math_threads
            )
        except ModelError as exc:
            logger.error("focus views will not be featurized: %s", exc)
            return None
        return featurizer.embed

    def _serve(self, manifest: ModelManifest) -> _Serving:
        """Open the index of ``manifest``'s model and the matcher and follower around it."""
        verdicts = {
            other.model_id: searchable_against(other, manifest.model_id)
            for other in all_manifests(self._settings.model_path)
        }
        search = self._settings.search
        opened = open_index(
            self._store,
            model_id=manifest.model_id,
            dim=manifest.embedding_dim,
            recipe=self._recipe,
            backend=search.backend,
            ann_min_vectors=search.ann_min_vectors,
            index_dir=self._settings.index_dir,
            milvus_uri=search.milvus_uri,
            milvus_index=search.milvus_index,
        )
        matcher = Matcher(
            index=opened.index,
            top_k=search.top_k,
            filters=self._filters,
            compatible_models=frozenset(m for m, (ok, _) in verdicts.items() if ok),
            refusals={m: why for m, (ok, why) in verdicts.items() if not ok},
            admit=self._sequence.check,
            local_features_of=self._item_local_features if search.verify else None,
            verify_candidates=search.verify_candidates,
            embed_view=self._view_featurizer(manifest) if search.view_focus else None,
        )
        follower = CatalogFollower(
            store=self._store,
            index=opened.index,
            recipe=self._recipe,
            after_seq=opened.change_seq,
            poll_s=self._settings.worker.catalog_poll_s,
            redis_url=str(self._settings.redis_url),
            shared_index=opened.shared_index,
            writer_ttl_s=self._settings.worker.index_writer_ttl_s,
        )
        return _Serving(manifest, matcher, follower)

    def _watch_model(self) -> None:
        """A newly exported model is served once the catalog holds its vectors: the new
        index is built here while the old one keeps answering, then swapped in at once."""
        while not self._stop.wait(self._settings.worker.model_poll_s):
            try:
                self.swap_model_if_changed()
            except EdgelensError:
                logger.exception("model change not served yet; retrying")
        logger.info("model watcher exits")

    def swap_model_if_changed(self) -> bool:
        manifest = self._configured_model()
        if manifest.model_id == self.model_id:
            return False
        if (manifest.model_id, self._recipe.recipe_id) not in self._store.models():
            if self._waiting_for != manifest.model_id:
                logger.warning(
                    "model %s exported; serving %s until the catalog is re-indexed with it",
                    manifest.model_id,
                    self.model_id,
                )
                self._waiting_for = manifest.model_id
            return False
        serving = self._serve(manifest)
        serving.follower.start()
        previous, self._serving = self._serving, serving
        previous.follower.stop()
        logger.info(
            "now serving model %s (%d items), was %s",
            manifest.model_id,
            len(serving.matcher.index),
            previous.manifest.model_id,
        )
        return True


def _limit_math_threads(threads: int) -> None:
    """One query at a time gains nothing from BLAS/OpenMP threads, and two workers on two
    cores lose to their spinning: measured 1.68x → 1.87x the messages/s of one worker."""
    import faiss
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    faiss.omp_set_num_threads(threads)
