"""Live data from Redis: device statuses and match records, as snapshots and as SSE feeds,
every feed of a web process fed by its one Redis subscription (:class:`LiveHub`).

Redis being unreachable is an expected state of a dashboard (the worker's Redis restarts,
the network drops), so the client library's connection errors become one
:class:`RedisUnavailableError` here: the API answers 503 and pages show a banner.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sse_starlette import ServerSentEvent

from edgelens.errors import RedisUnavailableError, TooManyStreamsError
from edgelens.webapp.schemas import ErrorOut
from edgelens.wire.names import DEVICES_CHANNEL, DEVICES_KEY, matches_channel, matches_key
from edgelens.wire.records import MatchRecord
from edgelens.wire.status import RecordedStatus

logger = logging.getLogger(__name__)

# How long the browser waits before reconnecting after a stream ends.
_RECONNECT_MS = 2000
_SUBSCRIBE_TIMEOUT_S = 2.0
# How long a page refused a stream (429) waits before it asks again.
_RETRY_AFTER_S = 10
# Events a stream may fall behind by before its oldest are dropped.
_QUEUE_EVENTS = 64
_HUB_RECONNECT_INITIAL_S = 0.25
_HUB_RECONNECT_MAX_S = 2.0
_MATCHES_PREFIX = matches_channel("")
_MATCHES_PATTERN = matches_channel("*")
# Reads a match record from Redis's JSON, checked, and writes it back as the API's JSON.
_RECORD = TypeAdapter(MatchRecord)
_STATUS = TypeAdapter(RecordedStatus)

T = TypeVar("T")


def connect(url: str) -> Redis:
    """A lazily connecting client: short timeouts turn a dead Redis into a quick 503."""
    return Redis.from_url(url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5)


@contextmanager
def reachable(redis: Redis) -> Iterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise RedisUnavailableError(_unavailable(redis.connection_pool, exc)) from exc


def _unavailable(pool: ConnectionPool, exc: Exception) -> str:
    """Where Redis was expected and why it failed; the URL's password is left out."""
    kwargs = pool.connection_kwargs
    return f"Redis at {kwargs.get('host')}:{kwargs.get('port')} is unavailable: {exc}"


async def list_devices(*, redis: Redis) -> list[RecordedStatus]:
    """Every device that ever reported, by id."""
    with reachable(redis):
        raw = await redis.hgetall(DEVICES_KEY)
    devices = [device for value in raw.values() if (device := _device(value))]
    return sorted(devices, key=lambda device: device.device_id)


async def get_device(*, redis: Redis, device_id: str) -> RecordedStatus | None:
    with reachable(redis):
        raw = await redis.hget(DEVICES_KEY, device_id)
    return _device(raw) if raw is not None else None


async def recent_records(*, redis: Redis, device_id: str, limit: int) -> list[MatchRecord]:
    """The device's newest match records, newest first."""
    with reachable(redis):
        raw = await redis.lrange(matches_key(device_id), 0, limit - 1)
    return [record for value in raw if (record := _record(value))]


class Subscription:
    """One live stream's place in the hub: its queue of events and its slot.

    The queue is bounded: a stream that reads slowly loses its oldest events rather than
    growing the process's memory or holding the hub (and so every other stream) up.
    ``None`` in the queue ends the stream.
    """

    def __init__(self, *, client: str, device_id: str | None, size: int) -> None:
        self.client = client
        self.device_id = device_id  # None: every device's statuses (the dashboard)
        self.queue: asyncio.Queue[ServerSentEvent | None] = asyncio.Queue(size)
        self.dropped = 0

    def push(self, event: ServerSentEvent | None) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
            if self.dropped == 1:
                logger.warning(
                    "a live view from %s reads too slowly: its oldest events are dropped",
                    self.client,
                )
        self.queue.put_nowait(event)


class LiveHub:
    """One Redis subscription per web process, shared by every live stream.

    A pub/sub connection per stream let a hundred open tabs take every connection of the
    pool, and then the API answered 503 to everyone. The hub subscribes once (device
    statuses, and every device's match records by pattern), parses each message once and
    hands it to the streams that want it. It also holds the stream slots: at most
    ``max_streams`` at once, ``max_streams_per_client`` of them from one address, so one
    visitor cannot hold them all. When Redis is lost, every stream gets an ``unavailable``
    event and ends, new streams are refused (503) and the hub reconnects with backoff.
    """

    def __init__(self, *, redis: Redis, max_streams: int, max_streams_per_client: int) -> None:
        self._redis = redis
        self._max_streams = max_streams
        self._max_per_client = max_streams_per_client
        self._slots: set[Subscription] = set()
        self._per_client: Counter[str] = Counter()
        self._every_device: set[Subscription] = set()
        self._by_device: dict[str, set[Subscription]] = {}
        self._ready = asyncio.Event()
        self._error: str | None = None  # why Redis is unavailable, once a try failed
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-hub")

    async def stop(self) -> None:
        """Unsubscribe and end whatever streams are still open."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self.end_streams()
        logger.info("live hub stopped: %d live views ended", len(self._slots))

    def end_streams(self) -> None:
        """End every open stream (the browser reconnects when the server is back)."""
        for subscription in self._slots:
            subscription.push(None)

    async def subscribe(self, *, client: str, device_id: str | None) -> Subscription:
        """A slot for a new stream, receiving from now on: its snapshot is read after this.

        Raises RedisUnavailableError while the hub is not subscribed, and
        TooManyStreamsError when ``client`` or the process has no slot left.
        """
        if not self._ready.is_set():
            if self._error is not None:
                raise RedisUnavailableError(self._error)
            try:  # the first subscription, just after start
                await asyncio.wait_for(self._ready.wait(), _SUBSCRIBE_TIMEOUT_S)
            except TimeoutError as exc:
                message = _unavailable(self._redis.connection_pool, exc)
                raise RedisUnavailableError(message) from exc
        # No await from here on: the caps hold and the routes are in place when this returns.
        if self._per_client[client] >= self._max_per_client:
            raise TooManyStreamsError(
                f"too many live views open from your address ({self._max_per_client}): "
                "close other dashboard tabs",
                retry_after_s=_RETRY_AFTER_S,
            )
        if len(self._slots) >= self._max_streams:
            raise TooManyStreamsError(
                f"the dashboard has as many live views open as it serves ({self._max_streams}): "
                "try again in a moment",
                retry_after_s=_RETRY_AFTER_S,
            )
        subscription = Subscription(client=client, device_id=device_id, size=_QUEUE_EVENTS)
        self._slots.add(subscription)
        self._per_client[client] += 1
        if device_id is None:
            self._every_device.add(subscription)
        else:
            self._by_device.setdefault(device_id, set()).add(subscription)
        return subscription

    def release(self, subscription: Subscription) -> None:
        """Free the stream's slot; safe to call more than once."""
        if subscription not in self._slots:
            return
        self._slots.remove(subscription)
        self._per_client[subscription.client] -= 1
        if not self._per_client[subscription.client]:
            del self._per_client[subscription.client]
        self._unroute(subscription)

    def _unroute(self, subscription: Subscription) -> None:
        if subscription.device_id is None:
            self._every_device.discard(subscription)
        elif routed := self._by_device.get(subscription.device_id):
            routed.discard(subscription)
            if not routed:
                del self._by_device[subscription.device_id]

    async def _run(self) -> None:
        delay = _HUB_RECONNECT_INITIAL_S
        while True:
            pubsub = self._redis.pubsub()
            try:
                await _confirmed(pubsub)
                delay = _HUB_RECONNECT_INITIAL_S
                self._error = None
                self._ready.set()
                logger.info("live hub subscribed to %s and %s", DEVICES_CHANNEL, _MATCHES_PATTERN)
                async for message in pubsub.listen():
                    self._dispatch(message)
            except RedisError as exc:
                self._lost(exc)
            finally:
                await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _HUB_RECONNECT_MAX_S)

    def _dispatch(self, message: dict[str, str]) -> None:
        """Parse a published change once and queue it for each stream that wants it."""
        if message["type"] == "message":  # the devices channel: a status
            device = _device(message["data"])
            if device is None:
                return
            event = ServerSentEvent(device.model_dump_json(), event="status")
            targets = self._every_device | self._by_device.get(device.device_id, set())
        elif message["type"] == "pmessage":  # a device's matches channel: a record
            targets = self._by_device.get(message["channel"].removeprefix(_MATCHES_PREFIX), set())
            if not targets or (event := _record_event(message["data"])) is None:
                return
        else:
            return
        for subscription in targets:
            subscription.push(event)

    def _lost(self, exc: Exception) -> None:
        """End every stream with the reason; new ones get 503 until the hub is back."""
        was_ready = self._ready.is_set()
        self._ready.clear()
        self._error = _unavailable(self._redis.connection_pool, exc)
        if not was_ready:
            logger.debug("live hub still without Redis: %s", exc)
            return
        routed = self._every_device.union(*self._by_device.values())
        self._every_device.clear()
        self._by_device.clear()
        logger.warning("live hub lost Redis, ending %d live views: %s", len(routed), exc)
        event = ServerSentEvent(ErrorOut(detail=self._error).model_dump_json(), event="unavailable")
        for subscription in routed:
            subscription.push(event)
            subscription.push(None)


async def _confirmed(pubsub: PubSub) -> None:
    """Subscribe and wait for Redis to confirm, so nothing published afterwards is missed."""
    await pubsub.subscribe(DEVICES_CHANNEL)
    await pubsub.psubscribe(_MATCHES_PATTERN)
    confirmed = 0
    while confirmed < 2:
        reply = await pubsub.get_message(timeout=_SUBSCRIBE_TIMEOUT_S)
        if reply is None:
            raise RedisTimeoutError(f"no confirmation of SUBSCRIBE {DEVICES_CHANNEL}")
        confirmed += reply["type"] in ("subscribe", "psubscribe")


@dataclass
class Feed:
    """A snapshot followed by every change published after it, as SSE events.

    The stream's subscription is in the hub, which Redis has confirmed, before the
    snapshot is read, so a change made in between is delivered (possibly twice: clients
    ignore a repeat of what they show) and never lost.
    """

    hub: LiveHub
    subscription: Subscription
    snapshot: list[ServerSentEvent]

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        try:
            yield ServerSentEvent(comment="connected", retry=_RECONNECT_MS)
            for event in self.snapshot:
                yield event
            while (event := await self.subscription.queue.get()) is not None:
                yield event
        finally:  # the client went away, or Redis did: the slot is free at once
            self.hub.release(self.subscription)

    async def close(self) -> None:
        """For a response whose events never started (HEAD, a failed start)."""
        self.hub.release(self.subscription)


async def device_feed(*, hub: LiveHub, redis: Redis, client: str, device_id: str) -> Feed:
    """Match records (unnamed events) and status changes (``status``) of one device."""
    subscription = await hub.subscribe(client=client, device_id=device_id)
    try:
        with reachable(redis):
            latest = await redis.lindex(matches_key(device_id), 0)
            status = await redis.hget(DEVICES_KEY, device_id)
    except BaseException:
        hub.release(subscription)
        raise
    snapshot = [_status_event(status, only=device_id), _record_event(latest)]
    return Feed(hub, subscription, [event for event in snapshot if event])


async def devices_feed(*, hub: LiveHub, redis: Redis, client: str) -> Feed:
    """Status changes (``status`` events) of every device, after all current statuses."""
    subscription = await hub.subscribe(client=client, device_id=None)
    try:
        with reachable(redis):
            statuses = await redis.hgetall(DEVICES_KEY)
    except BaseException:
        hub.release(subscription)
        raise
    snapshot = [_status_event(value) for _, value in sorted(statuses.items())]
    return Feed(hub, subscription, [event for event in snapshot if event])


def _device(raw: str) -> RecordedStatus | None:
    return _parsed(_STATUS, raw, "device status")


def _record(raw: str) -> MatchRecord | None:
    return _parsed(_RECORD, raw, "match record")


def _parsed(adapter: TypeAdapter[T], raw: str, what: str) -> T | None:
    """What Redis held, validated; None (and a warning) for what a device or an old
    version wrote that does not validate, so one bad value never breaks a page."""
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        logger.warning("ignoring a malformed %s %.200r: %s", what, raw, exc)
        return None


def _record_event(raw: str | None) -> ServerSentEvent | None:
    record = _record(raw) if raw is not None else None
    return ServerSentEvent(_RECORD.dump_json(record).decode()) if record else None


def _status_event(raw: str | None, *, only: str | None = None) -> ServerSentEvent | None:
    device = _device(raw) if raw is not None else None
    if device is None or (only is not None and device.device_id != only):
        return None
    return ServerSentEvent(device.model_dump_json(), event="status")
