"""The worker's two ends: MQTT in (frames and statuses) and Redis out (records, statuses).

The paho network threads (:class:`Ingress`) only check a message's size and its device's
fair share (:mod:`edgelens.cloud.fairness`) and queue it: frames per device, handed out
round-robin, so one device's backlog never delays another's first answers (a device's
newest frame replaces its oldest waiting one: for live matching the newest frame wins);
statuses as the newest per device, which the status thread (:class:`StatusRelay`)
checks and writes to Redis, so a device flooding statuses costs one write per pass and
never the network thread's time. The push thread (:class:`Pusher`) writes the answers
to Redis, so a search never waits on a Redis round trip.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Sequence

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from edgelens.cloud.fairness import Allowance, DeviceBudgets, FairQueue
from edgelens.cloud.metrics import Counts, WorkerMetrics
from edgelens.cloud.reject_log import RejectLog
from edgelens.cloud.sink import RedisSink
from edgelens.cloud.stages import POLL_S, Inbound, NewestPerKey, Outcomes, Outgoing, StageThreads
from edgelens.errors import RedisUnavailableError
from edgelens.settings import Settings
from edgelens.wire.features import MAX_MESSAGE_BYTES
from edgelens.wire.mqtt import WORKER_PROTOCOL, broker_label, connect_async, make_client
from edgelens.wire.names import (
    FEATURES_WILDCARD,
    FLEET_MODEL_TOPIC,
    STATUS_ACCOUNT_SUFFIX,
    STATUS_WILDCARD,
    device_of_topic,
    shared_subscription,
)
from edgelens.wire.records import Stage
from edgelens.wire.rollout import ModelOffer
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
STATUS_OUTCOMES = Outcomes("status_queued", "status_coalesced", "status_dropped")
# The status thread's shortest interval between two passes: statuses arriving meanwhile
# replace each other, so a device's status reaches Redis at most 1 / this a second.
STATUS_PASS_S = 0.1


class Ingress:
    """Two broker connections, frames and statuses (the broker queues messages for each
    connection on its own, so a flood of statuses never crowds out frames there), whose
    network threads only check a message and queue it: frames in :attr:`frames`,
    statuses in :attr:`statuses`."""

    def __init__(
        self,
        settings: Settings,
        *,
        stats: Counts,
        rejects: RejectLog,
        stop: threading.Event,
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._rejects = rejects
        self._stop = stop
        cfg = settings.worker
        self._budgets = DeviceBudgets(
            messages=Allowance(cfg.device_messages_per_s, cfg.device_message_burst),
            size=Allowance(cfg.device_bytes_per_s, cfg.device_byte_burst),
        )
        self.frames: FairQueue[Inbound] = FairQueue(
            capacity=QUEUE_SIZE, per_device=QUEUED_PER_DEVICE
        )
        self.statuses: NewestPerKey[Inbound] = NewestPerKey(
            STATUS_BACKLOG, outcomes=STATUS_OUTCOMES
        )
        self.subscribed = threading.Event()
        client_id = f"edgelens-worker-{uuid.uuid4().hex[:8]}"
        self._client = self._mqtt_client(client_id, "")
        self._status_client = self._mqtt_client(f"{client_id}-status", STATUS_ACCOUNT_SUFFIX)
        self._subscriptions: dict[mqtt.Client, bool] = {
            self._client: False,
            self._status_client: False,
        }
        self._broker = broker_label(str(settings.mqtt_url))
        self._said_unreachable = False  # this outage's warning given (the frame connection's)

    def offer_model(self, offer: ModelOffer) -> None:
        """Offer every device a model: retained at the broker, so a device that connects
        later reads it too."""
        self._client.publish(FLEET_MODEL_TOPIC, offer.to_json(), qos=1, retain=True)
        logger.info("fleet offered model %s", offer.model_id)

    def start(self) -> None:
        for client in self._subscriptions:
            connect_async(client, str(self._settings.mqtt_url))

    def stop(self) -> None:
        for client in self._subscriptions:
            client.disconnect()
            client.loop_stop()

    def _mqtt_client(self, client_id: str, username_suffix: str) -> mqtt.Client:
        settings = self._settings
        client = make_client(
            str(settings.mqtt_url),
            client_id=client_id,
            tls=settings.mqtt_tls,
            reconnect_min_s=min(0.5, settings.worker.reconnect_max_s),
            reconnect_max_s=settings.worker.reconnect_max_s,
            username_suffix=username_suffix,
            protocol=WORKER_PROTOCOL,
        )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

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
        self._said_unreachable = False
        logger.info("connected to the broker %s; subscribing as group %s", self._broker, group)

    def _on_connect_fail(self, client: mqtt.Client, _userdata) -> None:
        """paho calls this on every failed try, backing off between them: said once an
        outage, by the frame connection (the status one fails alike)."""
        if client is self._client and not self._said_unreachable:
            self._said_unreachable = True
            logger.warning("broker %s not reachable; retrying with backoff", self._broker)

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
            self._said_unreachable = self._said_unreachable or client is self._client
            logger.warning(
                "lost the broker %s (%s); reconnecting with backoff", self._broker, reason_code
            )

    def _too_large(self, reason: str, what: str, topic: str, size: int, limit: int) -> bool:
        """Whether a payload is over ``limit``; if so it is counted and said (once per
        interval), before anything copies it."""
        if size <= limit:
            return False
        self._stats.add(f"rejected_{reason}")
        self._rejects.warn(reason, "%s on %s: %d bytes (at most %d)", what, topic, size, limit)
        return True

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        """Sizes are checked before a payload is copied, and a device's share before its
        frame is queued; a status only replaces its device's waiting one."""
        received_at, topic, size = time.time(), message.topic, len(message.payload)
        if topic.endswith("/status"):
            if self._too_large("bad_status", "refused the status", topic, size, MAX_STATUS_BYTES):
                return
            inbound = Inbound(topic, bytes(message.payload), received_at)
            self._stats.add(self.statuses.put(topic, inbound))
            return
        self._stats.add("received")
        if self._too_large("oversized", "rejected message", topic, size, MAX_MESSAGE_BYTES):
            return
        device = device_of_topic(topic) or topic
        if not self._budgets.admit(device, size):
            self._stats.add("rejected_rate_limited")
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
        inbound = Inbound(topic, bytes(message.payload), received_at)
        self._stats.add("dropped", self.frames.put(device, inbound))


class StatusRelay(StageThreads):
    """The status thread: checks and records every device's newest status, one pass at a
    time and at most one pass every :data:`STATUS_PASS_S`: statuses arriving meanwhile
    replace each other, so a device flooding statuses costs one Redis write per pass."""

    def __init__(
        self,
        statuses: NewestPerKey[Inbound],
        *,
        sink: RedisSink,
        stats: Counts,
        rejects: RejectLog,
        stop: threading.Event,
    ) -> None:
        super().__init__(("worker-status", self._run))
        self._statuses = statuses
        self._sink = sink
        self._stats = stats
        self._rejects = rejects
        self._stop = stop
        self._device_states: dict[str, str] = {}

    def devices_online(self) -> int:
        # A copy: the status thread may add a device while /metrics is scraped.
        return list(self._device_states.values()).count("online")

    def _run(self) -> None:
        while not self._stop.is_set():
            waiting = self._statuses.take_all(timeout=POLL_S)
            if not waiting:
                continue
            try:
                self.record(waiting)
            except Exception:  # a bug must cost these statuses, never the worker
                self._stats.add("errors_unexpected", len(waiting))
                logger.exception("unexpected error recording %d status(es)", len(waiting))
            self._stop.wait(STATUS_PASS_S)
        logger.info("status loop exits")

    def record(self, inbounds: Sequence[Inbound]) -> None:
        """Check statuses and write the good ones to Redis in one round trip."""
        checked = [status for inbound in inbounds if (status := self._checked(inbound))]
        if not checked:
            return
        for device_id, status in checked:
            self._device_states[device_id] = status.state
        try:
            self._sink.device_statuses(checked)
        except RedisUnavailableError as exc:
            self._stats.add("redis_errors", len(checked))
            logger.error("cannot record %d device status(es): %s", len(checked), exc)
            return
        self._stats.add("status_recorded", len(checked))

    def _checked(self, inbound: Inbound) -> tuple[str, DeviceStatus] | None:
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
            self._refuse(inbound, _validation_reasons(exc))
            return None
        except ValueError as exc:
            self._refuse(inbound, str(exc))
            return None
        return device_id, status

    def _refuse(self, inbound: Inbound, why: str) -> None:
        self._stats.add("rejected_bad_status")
        self._rejects.warn("bad_status", "refused the status on %s: %s", inbound.topic, why)


class Pusher(StageThreads):
    """The push thread: writes matched records to Redis beside the match loop, so a search
    never waits on a Redis round trip; records that queued up meanwhile go in one
    pipeline. It ends at :meth:`stop`, once the records queued before have gone out."""

    def __init__(self, *, sink: RedisSink, stats: Counts, metrics: WorkerMetrics) -> None:
        super().__init__(("worker-push", self._run))
        self._sink = sink
        self._stats = stats
        self._metrics = metrics
        self.redis_down = False
        # Matched records waiting for Redis; None ends the push thread.
        self._waiting: queue.Queue[Outgoing | None] = queue.Queue(maxsize=QUEUE_SIZE)

    def put(self, out: Outgoing) -> None:
        """Queue ``out`` for the push thread (waiting while its queue is full)."""
        self._waiting.put(out)

    def stop(self) -> None:
        if self.alive():  # a worker driven only through handle_message never started it
            self._waiting.put(None)
            self.join()

    def _run(self) -> None:
        while True:
            out = self._waiting.get()
            batch = [out] if out is not None else []
            while out is not None and len(batch) < PUSH_BATCH:
                try:
                    out = self._waiting.get_nowait()
                except queue.Empty:
                    break
                if out is not None:
                    batch.append(out)
            if batch:
                self.push(batch)
            if out is None:
                logger.info("push loop exits")
                return

    def push(self, outgoing: list[Outgoing]) -> None:
        """Write ``outgoing`` to Redis now, in the caller's thread."""
        started = time.perf_counter()
        records = [o.record for o in outgoing]
        views = {(o.record.device_id, o.record.seq): o.view_jpeg for o in outgoing if o.view_jpeg}
        vectors = {
            (o.record.device_id, o.record.seq): o.view_vectors for o in outgoing if o.view_vectors
        }
        try:
            stored = self._sink.push(records, views, vectors)
        except RedisUnavailableError as exc:
            self._stats.add("redis_errors", len(records))
            if not self.redis_down:
                logger.error("cannot push matches, will keep trying: %s", exc)
            self.redis_down = True
            return
        except Exception:  # a bug must cost these records, never the worker
            self._stats.add("errors_unexpected", len(records))
            logger.exception("unexpected error pushing %d record(s)", len(records))
            return
        if self.redis_down:
            logger.info("redis is back; pushing matches again")
            self.redis_down = False
        firsts = [r for r in records if r.stage is Stage.FIRST]
        confirmed = sum(r.stage is Stage.CONFIRMED for r in stored)
        self._stats.add("matched", len(firsts))
        self._stats.add("confirmed", confirmed)
        self._stats.add("confirm_unplaced", len(records) - len(firsts) - confirmed)
        self._stats.add("push_us", int((time.perf_counter() - started) * 1e6))
        now = time.time()
        for record in firsts:
            self._metrics.search_seconds.observe(
                (record.stages_ms["decode"] + record.stages_ms["search"]) / 1000
            )
            self._metrics.end_to_end_seconds.observe(max(0.0, now - record.captured_at))


def _validation_reasons(exc: ValidationError, most: int = 3) -> str:
    """A status's faults on one line: each field and what is wrong with it."""
    faults = [
        f"{'.'.join(map(str, error['loc'])) or 'status'}: {error['msg']}"
        for error in exc.errors()[:most]
    ]
    more = exc.error_count() - len(faults)
    return "; ".join(faults) + (f" (and {more} more)" if more > 0 else "")
