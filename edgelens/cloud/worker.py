"""The worker: MQTT shared subscription → bounded queue → answer → Redis.

Small stages, each with a stop event and a clean exit log: the paho network thread only
checks a message's size and its device's fair share (edgelens.cloud.fairness) and
enqueues it: frames per device, handed out round-robin, so one device's backlog never
delays another's first answers (a device's newest frame replaces its oldest waiting one:
for live matching the newest frame wins); statuses as the newest per device, which the
status thread checks and writes to Redis, so a device flooding statuses costs one write
per pass and never the network thread's time. The match thread answers every message
from its vectors at once (stage one of :mod:`edgelens.cloud.answer`) and hands a message
whose view could change that answer to the confirm thread (stage two, its own bounded
backlog, so it never delays a first answer); the push thread writes both to Redis; a
model watcher swaps in a new model's index once the catalog holds its vectors.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import paho.mqtt.client as mqtt
from pydantic import ValidationError

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.answer import Answerer, AnswerPolicy
from edgelens.cloud.catalog_follower import CatalogFollower
from edgelens.cloud.fairness import Allowance, DeviceBudgets, FairQueue
from edgelens.cloud.keypoints import KeypointCache
from edgelens.cloud.matcher import ConfirmJob, Matcher, RejectedMessage
from edgelens.cloud.metrics import MetricsServer, WorkerMetrics
from edgelens.cloud.reject_log import RejectLog
from edgelens.cloud.sequence_guard import SequenceGuard
from edgelens.cloud.sink import RedisSink
from edgelens.errors import EdgelensError, ModelError, RedisUnavailableError
from edgelens.featurizer.manifest import (
    ModelManifest,
    all_manifests,
    load_manifest,
    searchable_against,
)
from edgelens.featurizer.runtime import load_featurizer
from edgelens.search.base import VectorIndex
from edgelens.search.loader import open_index, save_if_persistent
from edgelens.settings import Settings, require_secrets
from edgelens.wire.features import MAX_MESSAGE_BYTES
from edgelens.wire.mqtt import connect_async, make_client
from edgelens.wire.names import (
    FEATURES_WILDCARD,
    STATUS_ACCOUNT_SUFFIX,
    STATUS_WILDCARD,
    device_of_topic,
    shared_subscription,
)
from edgelens.wire.records import MatchRecord, Stage
from edgelens.wire.status import DeviceStatus

logger = logging.getLogger(__name__)

QUEUE_SIZE = 64
# Frames of one device waiting for the match loop; a newer one replaces its oldest.
QUEUED_PER_DEVICE = 4
# Most records written to Redis in one pipeline when they queued up.
PUSH_BATCH = 32
# A device status is a small JSON object; anything larger is refused unparsed.
MAX_STATUS_BYTES = 4096
# Devices whose newest status waits for the status thread; the oldest goes when full.
STATUS_BACKLOG = 4096
# The status thread's shortest interval between two passes: statuses arriving meanwhile
# replace each other, so a device's status reaches Redis at most 1 / this a second.
STATUS_PASS_S = 0.1
# Stage two's backlog: devices with a view waiting (one each); the oldest goes when full.
CONFIRM_BACKLOG = 64
# A view whose frame vector is this close to the device's last confirmed view's is that
# view again (a device sends each settled view once; older devices sent one per frame).
SAME_VIEW_COSINE = 0.95
# Devices whose last confirmed view is remembered.
VIEWS_REMEMBERED = 10_000
# How much lower stage two's thread runs than the first answers (a nice increment).
CONFIRM_NICENESS = 10


@dataclass(frozen=True)
class _Inbound:
    topic: str
    payload: bytes
    received_at: float  # wall clock, comparable with the device's captured_at


@dataclass(frozen=True)
class _Outgoing:
    """A record to push, with the view its frame came with when that is to be kept."""

    record: MatchRecord
    view_jpeg: bytes | None = None


class _ConfirmBacklog:
    """Stage two's waiting jobs: one per device (a newer view supersedes the one waiting,
    whose frame is no longer on screen), at most ``capacity`` devices (the oldest job goes),
    and none for a view the device already had confirmed against the same catalog (after a
    change, such as a correction of that very view, the same view is confirmed again)."""

    def __init__(self, capacity: int = CONFIRM_BACKLOG) -> None:
        self._capacity = capacity
        self._ready = threading.Condition()
        self._jobs: OrderedDict[str, ConfirmJob] = OrderedDict()
        # last view per device, with the catalog change it was confirmed at
        self._views: OrderedDict[str, tuple[np.ndarray, int]] = OrderedDict()

    def __len__(self) -> int:
        with self._ready:
            return len(self._jobs)

    def offer(self, job: ConfirmJob, *, catalog_seq: int) -> str:
        """Queue ``job`` (the catalog at change ``catalog_seq``); returns its outcome's
        counter name."""
        device_id, vector = job.message.device_id, job.message.embedding
        with self._ready:
            last, seq = self._views.get(device_id, (None, catalog_seq))
            if last is not None and seq == catalog_seq and float(last @ vector) >= SAME_VIEW_COSINE:
                return "confirm_same_view"
            self._views[device_id] = (vector, catalog_seq)
            self._views.move_to_end(device_id)
            if len(self._views) > VIEWS_REMEMBERED:
                self._views.popitem(last=False)
            outcome = "confirm_queued"
            if self._jobs.pop(device_id, None) is not None:
                outcome = "confirm_superseded"
            elif len(self._jobs) >= self._capacity:
                self._jobs.popitem(last=False)
                outcome = "confirm_dropped"
            self._jobs[device_id] = job
            self._ready.notify()
            return outcome

    def take(self, timeout: float) -> ConfirmJob | None:
        with self._ready:
            if not self._jobs:
                self._ready.wait(timeout)
            return self._jobs.popitem(last=False)[1] if self._jobs else None


class _LatestStatuses:
    """The newest raw status of each device (by topic) waiting for the status thread: a
    newer one replaces the one waiting, which is then no longer true; at most ``capacity``
    devices (the oldest waiting goes)."""

    def __init__(self, capacity: int = STATUS_BACKLOG) -> None:
        self._capacity = capacity
        self._ready = threading.Condition()
        self._waiting: OrderedDict[str, _Inbound] = OrderedDict()

    def put(self, inbound: _Inbound) -> str:
        """Keep ``inbound`` as its device's newest; returns its outcome's counter name."""
        with self._ready:
            outcome = "status_queued"
            if inbound.topic in self._waiting:
                outcome = "status_coalesced"
            elif len(self._waiting) >= self._capacity:
                self._waiting.popitem(last=False)
                outcome = "status_dropped"
            self._waiting[inbound.topic] = inbound
            self._ready.notify()
            return outcome

    def take_all(self, timeout: float) -> list[_Inbound]:
        """Every waiting status, after at most ``timeout`` seconds of waiting for one."""
        with self._ready:
            if not self._waiting:
                self._ready.wait(timeout)
            taken = list(self._waiting.values())
            self._waiting.clear()
            return taken


class WorkerStats:
    """Thread-safe counters: received, matched, rejected by reason, dropped, redis errors."""

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
        self._policy = AnswerPolicy.from_settings(settings)
        self._sequence = SequenceGuard()
        self._rejects = RejectLog(logger)
        self._serving = self._serve(self._configured_model())
        self._waiting_for: str | None = None
        self._sink = RedisSink(
            str(settings.redis_url),
            matches_kept=settings.worker.matches_kept,
            views_kept_s=settings.worker.views_kept_s,
        )
        cfg = settings.worker
        self._budgets = DeviceBudgets(
            messages=Allowance(cfg.device_messages_per_s, cfg.device_message_burst),
            size=Allowance(cfg.device_bytes_per_s, cfg.device_byte_burst),
        )
        self._frames: FairQueue[_Inbound] = FairQueue(
            capacity=QUEUE_SIZE, per_device=QUEUED_PER_DEVICE
        )
        self._statuses = _LatestStatuses()
        self._confirms = _ConfirmBacklog()
        self._stop = threading.Event()
        self._redis_down = False
        self.stats = WorkerStats()
        self.subscribed = threading.Event()
        self._device_states: dict[str, str] = {}
        self.metrics = WorkerMetrics(
            counts=self.stats.snapshot,
            queue_length=self._frames.__len__,
            confirm_backlog=self._confirms.__len__,
            # A copy: the status thread may add a device while /metrics is scraped.
            devices_online=lambda: list(self._device_states.values()).count("online"),
        )
        self._metrics_server: MetricsServer | None = None
        # Two connections: frames, and statuses. The broker queues messages for each
        # connection on its own, so a flood of statuses never crowds out frames there.
        client_id = f"edgelens-worker-{uuid.uuid4().hex[:8]}"
        self._client = self._mqtt_client(client_id, "")
        self._status_client = self._mqtt_client(f"{client_id}-status", STATUS_ACCOUNT_SUFFIX)
        self._subscriptions: dict[mqtt.Client, bool] = {
            self._client: False,
            self._status_client: False,
        }
        # Matched records waiting for Redis; None ends the push thread.
        self._pushes: queue.Queue[_Outgoing | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._threads = [
            threading.Thread(target=self._match_loop, name="worker-match", daemon=True),
            threading.Thread(target=self._confirm_loop, name="worker-confirm", daemon=True),
            threading.Thread(target=self._status_loop, name="worker-status", daemon=True),
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
            "queue_length": len(self._frames),
            "confirm_backlog": len(self._confirms),
        }
        return bool(detail["mqtt_subscribed"] and detail["redis_ok"]), detail

    def _mqtt_client(self, client_id: str, username_suffix: str) -> mqtt.Client:
        settings = self._settings
        client = make_client(
            str(settings.mqtt_url),
            client_id=client_id,
            tls=settings.mqtt_tls,
            reconnect_min_s=min(0.5, settings.worker.reconnect_max_s),
            reconnect_max_s=settings.worker.reconnect_max_s,
            username_suffix=username_suffix,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        self._start_metrics()
        self.catalog.start()
        for thread in self._threads:
            thread.start()
        self._push_thread.start()
        for client in self._subscriptions:
            connect_async(client, str(self._settings.mqtt_url))
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
        for client in self._subscriptions:
            client.disconnect()
            client.loop_stop()
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
        statuses = client is self._status_client
        if reason_code.is_failure:
            logger.warning(
                "broker refused the worker's %s connection: %s%s",
                "status" if statuses else "frame",
                reason_code,
                " (a worker enrolled before it had a status account: enroll it again)"
                if statuses
                else "",
            )
            return
        if statuses:
            # QoS 0: a status is the device's latest state, retained at the broker and
            # sent again on every reconnect, so acknowledging each one buys nothing, and
            # under a flood the broker drops the excess instead of this process parsing it.
            client.subscribe(STATUS_WILDCARD, 0)
            return
        group = self._settings.worker.share_group
        client.subscribe(shared_subscription(group, FEATURES_WILDCARD), 0)
        logger.info("connected to the broker; subscribing as group %s", group)

    def _on_subscribe(self, client: mqtt.Client, _userdata, _mid, reason_codes, _props) -> None:
        failed = [code for code in reason_codes if code.is_failure]
        if failed:
            logger.error("subscription refused: %s", failed)
            return
        self._subscriptions[client] = True
        if all(self._subscriptions.values()):
            self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, _userdata, _flags, reason_code, _props) -> None:
        self._subscriptions[client] = False
        self.subscribed.clear()
        if not self._stop.is_set():
            logger.warning("lost the broker (%s); reconnecting with backoff", reason_code)

    def _too_large(self, reason: str, what: str, topic: str, size: int, limit: int) -> bool:
        """Whether a payload is over ``limit``; if so it is counted and said (once per
        interval), before anything copies it."""
        if size <= limit:
            return False
        self.stats.add(f"rejected_{reason}")
        self._rejects.warn(reason, "%s on %s: %d bytes (at most %d)", what, topic, size, limit)
        return True

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        """Sizes are checked before a payload is copied, and a device's share before its
        frame is queued; a status only replaces its device's waiting one."""
        received_at, topic, size = time.time(), message.topic, len(message.payload)
        if topic.endswith("/status"):
            if self._too_large("bad_status", "refused the status", topic, size, MAX_STATUS_BYTES):
                return
            self.stats.add(self._statuses.put(_Inbound(topic, bytes(message.payload), received_at)))
            return
        self.stats.add("received")
        if self._too_large("oversized", "rejected message", topic, size, MAX_MESSAGE_BYTES):
            return
        device = device_of_topic(topic) or topic
        if not self._budgets.admit(device, size):
            self.stats.add("rejected_rate_limited")
            cfg = self._settings.worker
            self._rejects.warn(
                "rate_limited",
                "rejected message on %s: the device sends more than its share "
                "(%g messages and %d bytes a second)",
                topic,
                cfg.device_messages_per_s,
                cfg.device_bytes_per_s,
            )
            return
        inbound = _Inbound(topic, bytes(message.payload), received_at)
        self.stats.add("dropped", self._frames.put(device, inbound))

    # -- stages ------------------------------------------------------------------------------

    def _match_loop(self) -> None:
        _limit_math_threads(self._settings.worker.math_threads)  # OpenMP's limit is per thread
        while not self._stop.is_set():
            inbound = self._frames.take(timeout=0.2)
            if inbound is None:
                continue
            job = self._answer_safely(inbound, self._pushes.put)
            if job is not None:
                catalog_seq = self._serving.follower.applied_seq
                self.stats.add(self._confirms.offer(job, catalog_seq=catalog_seq))
        logger.info("match loop exits")

    def _confirm_loop(self) -> None:
        """Stage two, one job at a time, beside the match loop and below it: on a busy
        core the scheduler runs the first answers first."""
        _limit_math_threads(self._settings.worker.math_threads)
        _lower_this_threads_priority(CONFIRM_NICENESS)
        while not self._stop.is_set():
            job = self._confirms.take(timeout=0.2)
            if job is not None:
                self._confirm_safely(job, self._pushes.put)
        logger.info("confirm loop exits")

    def _status_loop(self) -> None:
        """Checks and records every device's newest status, one pass at a time and at most
        one pass every :data:`STATUS_PASS_S`: statuses arriving meanwhile replace each
        other, so a device flooding statuses costs one Redis write per pass."""
        while not self._stop.is_set():
            waiting = self._statuses.take_all(timeout=0.2)
            if not waiting:
                continue
            try:
                self._record_statuses(waiting)
            except Exception:  # a bug must cost these statuses, never the worker
                self.stats.add("errors_unexpected", len(waiting))
                logger.exception("unexpected error recording %d status(es)", len(waiting))
            self._stop.wait(STATUS_PASS_S)
        logger.info("status loop exits")

    def _push_loop(self) -> None:
        """Writes matched records to Redis beside the match loop, so a search never waits
        on a Redis round trip; records that queued up meanwhile go in one pipeline."""
        while True:
            out = self._pushes.get()
            batch = [out] if out is not None else []
            while out is not None and len(batch) < PUSH_BATCH:
                try:
                    out = self._pushes.get_nowait()
                except queue.Empty:
                    break
                if out is not None:
                    batch.append(out)
            if batch:
                self._push(batch)
            if out is None:
                logger.info("push loop exits")
                return

    def handle_message(
        self, topic: str, payload: bytes, *, received_at: float | None = None
    ) -> None:
        """Handle one message in the caller's thread, exactly as the MQTT path does after
        its queue, the push to Redis included (the fuzz tests drive this)."""
        inbound = _Inbound(topic, payload, time.time() if received_at is None else received_at)
        if topic.endswith("/status"):
            self._record_statuses([inbound])
            return
        job = self._answer_safely(inbound, lambda out: self._push([out]))
        if job is not None:
            self._confirm_safely(job, lambda out: self._push([out]))

    def _answer_safely(
        self, inbound: _Inbound, push: Callable[[_Outgoing], None]
    ) -> ConfirmJob | None:
        """Stage one of one message: its record pushed; stage two's job if it wants one."""
        try:
            first = self._serving.matcher.first(
                inbound.topic, inbound.payload, received_at=inbound.received_at
            )
        except RejectedMessage as exc:
            self.stats.add(f"rejected_{exc.reason}")
            self._rejects.warn(exc.reason, "rejected message on %s: %s", inbound.topic, exc)
            return None
        except Exception:  # a bug must cost one message, never the worker
            self.stats.add("errors_unexpected")
            logger.exception("unexpected error on a message of %s", inbound.topic)
            return None
        push(_Outgoing(first.record, first.view_jpeg))
        return first.confirm

    def _confirm_safely(self, job: ConfirmJob, push: Callable[[_Outgoing], None]) -> None:
        message = job.message
        try:
            record = self._serving.matcher.confirm(job)
        except Exception:  # a bug must cost one confirmation, never the worker
            self.stats.add("errors_unexpected")
            logger.exception("unexpected error confirming %s #%d", message.device_id, message.seq)
            return
        if record is None:
            self.stats.add("confirm_unusable_view")
            return
        push(_Outgoing(record))

    def _push(self, outgoing: list[_Outgoing]) -> None:
        started = time.perf_counter()
        records = [o.record for o in outgoing]
        views = {(o.record.device_id, o.record.seq): o.view_jpeg for o in outgoing if o.view_jpeg}
        try:
            stored = self._sink.push(records, views)
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
        firsts = [r for r in records if r.stage is Stage.FIRST]
        confirmed = sum(r.stage is Stage.CONFIRMED for r in stored)
        self.stats.add("matched", len(firsts))
        self.stats.add("confirmed", confirmed)
        self.stats.add("confirm_unplaced", len(records) - len(firsts) - confirmed)
        self.stats.add("push_us", int((time.perf_counter() - started) * 1e6))
        now = time.time()
        for record in firsts:
            self.metrics.search_seconds.observe(
                (record.stages_ms["decode"] + record.stages_ms["search"]) / 1000
            )
            self.metrics.end_to_end_seconds.observe(max(0.0, now - record.captured_at))

    def _record_statuses(self, inbounds: Sequence[_Inbound]) -> None:
        """Check statuses and write the good ones to Redis in one round trip."""
        checked = [status for inbound in inbounds if (status := self._checked_status(inbound))]
        if not checked:
            return
        for device_id, status in checked:
            self._device_states[device_id] = status.state
        try:
            self._sink.device_statuses(checked)
        except RedisUnavailableError as exc:
            self.stats.add("redis_errors", len(checked))
            logger.error("cannot record %d device status(es): %s", len(checked), exc)
            return
        self.stats.add("status_recorded", len(checked))

    def _checked_status(self, inbound: _Inbound) -> tuple[str, DeviceStatus] | None:
        """The device's id and its status, or None (counted, and said in the reject log)
        when the topic names no device or the payload is no status of that device."""
        device_id = device_of_topic(inbound.topic)
        try:
            if device_id is None:
                raise ValueError("not a device's status topic")
            if len(inbound.payload) > MAX_STATUS_BYTES:
                raise ValueError(f"{len(inbound.payload)} bytes, at most {MAX_STATUS_BYTES}")
            status = DeviceStatus.model_validate_json(inbound.payload)
            if status.device_id not in (None, device_id):
                raise ValueError(f"it claims to be device {status.device_id}")
        except ValidationError as exc:
            self._refuse_status(inbound, _validation_reasons(exc))
            return None
        except ValueError as exc:
            self._refuse_status(inbound, str(exc))
            return None
        return device_id, status

    def _refuse_status(self, inbound: _Inbound, why: str) -> None:
        self.stats.add("rejected_bad_status")
        self._rejects.warn("bad_status", "refused the status on %s: %s", inbound.topic, why)

    # -- model changes -----------------------------------------------------------------------

    def _configured_model(self) -> ModelManifest:
        cfg = self._settings.featurizer
        return load_manifest(self._settings.model_path, cfg.precision, cfg.pooling)

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
        answerer = Answerer(
            index=opened.index,
            policy=self._policy,
            embed_view=self._view_featurizer(manifest) if self._policy.view_focus else None,
            keypoints_of=KeypointCache(
                self._store,
                model_id=manifest.model_id,
                recipe_id=self._recipe.recipe_id,
                dim=manifest.embedding_dim,
            ),
        )
        matcher = Matcher(
            answerer=answerer,
            compatible_models=frozenset(m for m, (ok, _) in verdicts.items() if ok),
            refusals={m: why for m, (ok, why) in verdicts.items() if not ok},
            admit=self._sequence.check,
            keep_views=self._settings.worker.views_kept_s > 0,
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


def _validation_reasons(exc: ValidationError, most: int = 3) -> str:
    """A status's faults on one line: each field and what is wrong with it."""
    faults = [
        f"{'.'.join(map(str, error['loc'])) or 'status'}: {error['msg']}"
        for error in exc.errors()[:most]
    ]
    more = exc.error_count() - len(faults)
    return "; ".join(faults) + (f" (and {more} more)" if more > 0 else "")


def _lower_this_threads_priority(niceness: int) -> None:
    """Lower the calling thread's scheduling priority (Linux: threads have their own nice
    value); elsewhere, or without the right, it keeps the process's."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError) as exc:
        logger.info("stage two runs at the worker's own priority: %s", exc)


def _limit_math_threads(threads: int) -> None:
    """One query at a time gains nothing from BLAS/OpenMP threads, and two workers on two
    cores lose to their spinning: measured 1.68x → 1.87x the messages/s of one worker."""
    import faiss
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    faiss.omp_set_num_threads(threads)
