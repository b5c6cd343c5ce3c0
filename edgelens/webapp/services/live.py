"""Live data from Redis: device statuses and match records, as snapshots and as SSE feeds.

Redis being unreachable is an expected state of a dashboard (the worker's Redis restarts,
the network drops), so the client library's connection errors become one
:class:`RedisUnavailableError` here: the API answers 503 and pages show a banner.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import ValidationError
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sse_starlette import ServerSentEvent

from edgelens.errors import RedisUnavailableError
from edgelens.webapp.schemas import DeviceOut, ErrorOut, MatchRecordOut
from edgelens.wire.names import DEVICES_CHANNEL, DEVICES_KEY, matches_channel, matches_key

logger = logging.getLogger(__name__)

# How long the browser waits before reconnecting after a stream ends.
_RECONNECT_MS = 2000
_SUBSCRIBE_TIMEOUT_S = 2.0


def connect(url: str) -> Redis:
    """A lazily connecting client: short timeouts turn a dead Redis into a quick 503."""
    return Redis.from_url(url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5)


@contextmanager
def _reachable(redis: Redis) -> Iterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise RedisUnavailableError(_unavailable(redis.connection_pool, exc)) from exc


def _unavailable(pool: ConnectionPool, exc: Exception) -> str:
    """Where Redis was expected and why it failed; the URL's password is left out."""
    kwargs = pool.connection_kwargs
    return f"Redis at {kwargs.get('host')}:{kwargs.get('port')} is unavailable: {exc}"


async def list_devices(*, redis: Redis) -> list[DeviceOut]:
    """Every device that ever reported, by id."""
    with _reachable(redis):
        raw = await redis.hgetall(DEVICES_KEY)
    devices = [device for value in raw.values() if (device := _device(value))]
    return sorted(devices, key=lambda device: device.device_id)


async def get_device(*, redis: Redis, device_id: str) -> DeviceOut | None:
    with _reachable(redis):
        raw = await redis.hget(DEVICES_KEY, device_id)
    return _device(raw) if raw is not None else None


async def recent_records(*, redis: Redis, device_id: str, limit: int) -> list[MatchRecordOut]:
    """The device's newest match records, newest first."""
    with _reachable(redis):
        raw = await redis.lrange(matches_key(device_id), 0, limit - 1)
    return [record for value in raw if (record := _record(value))]


@dataclass
class Feed:
    """A snapshot followed by every change published after it, as SSE events.

    The subscription is confirmed before the snapshot is read, so a change made in
    between is delivered (possibly twice: clients ignore a repeat of what they show)
    and never lost.
    """

    pubsub: PubSub
    snapshot: list[ServerSentEvent]
    convert: Callable[[str, str], ServerSentEvent | None]  # (channel, payload) → event

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(comment="connected", retry=_RECONNECT_MS)
        for event in self.snapshot:
            yield event
        try:
            async for message in self.pubsub.listen():
                if message["type"] == "message" and (
                    event := self.convert(message["channel"], message["data"])
                ):
                    yield event
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # Ending the stream makes the browser reconnect, which answers 503 until Redis
            # is back; the event tells the page why before that.
            logger.warning("live feed lost Redis: %s", exc)
            detail = ErrorOut(detail=_unavailable(self.pubsub.connection_pool, exc))
            yield ServerSentEvent(detail.model_dump_json(), event="unavailable")

    async def close(self) -> None:
        await self.pubsub.aclose()


async def device_feed(*, redis: Redis, device_id: str) -> Feed:
    """Match records (unnamed events) and status changes (``status``) of one device."""
    records = matches_channel(device_id)
    pubsub = await _subscribe(redis, records, DEVICES_CHANNEL)
    try:
        with _reachable(redis):
            latest = await redis.lindex(matches_key(device_id), 0)
            status = await redis.hget(DEVICES_KEY, device_id)
    except BaseException:
        await pubsub.aclose()
        raise

    def convert(channel: str, payload: str) -> ServerSentEvent | None:
        if channel == records:
            return _record_event(payload)
        return _status_event(payload, only=device_id)

    snapshot = [_status_event(status, only=device_id), _record_event(latest)]
    return Feed(pubsub, [event for event in snapshot if event], convert)


async def devices_feed(*, redis: Redis) -> Feed:
    """Status changes (``status`` events) of every device, after all current statuses."""
    pubsub = await _subscribe(redis, DEVICES_CHANNEL)
    try:
        with _reachable(redis):
            statuses = await redis.hgetall(DEVICES_KEY)
    except BaseException:
        await pubsub.aclose()
        raise
    snapshot = [_status_event(value) for _, value in sorted(statuses.items())]
    return Feed(
        pubsub, [event for event in snapshot if event], lambda _, payload: _status_event(payload)
    )


async def _subscribe(redis: Redis, *channels: str) -> PubSub:
    """Subscribe and wait for Redis to confirm, so nothing published afterwards is missed."""
    pubsub = redis.pubsub()
    try:
        with _reachable(redis):
            await pubsub.subscribe(*channels)
            confirmed = 0
            while confirmed < len(channels):
                reply = await pubsub.get_message(timeout=_SUBSCRIBE_TIMEOUT_S)
                if reply is None:
                    raise RedisTimeoutError(f"no confirmation of SUBSCRIBE {' '.join(channels)}")
                confirmed += reply["type"] == "subscribe"
    except BaseException:
        await pubsub.aclose()
        raise
    return pubsub


def _device(raw: str) -> DeviceOut | None:
    try:
        return DeviceOut.model_validate_json(raw)
    except ValidationError as exc:
        logger.warning("ignoring a malformed device status %.200r: %s", raw, exc)
        return None


def _record(raw: str) -> MatchRecordOut | None:
    try:
        return MatchRecordOut.model_validate_json(raw)
    except ValidationError as exc:
        logger.warning("ignoring a malformed match record %.200r: %s", raw, exc)
        return None


def _record_event(raw: str | None) -> ServerSentEvent | None:
    record = _record(raw) if raw is not None else None
    return ServerSentEvent(record.model_dump_json()) if record else None


def _status_event(raw: str | None, *, only: str | None = None) -> ServerSentEvent | None:
    device = _device(raw) if raw is not None else None
    if device is None or (only is not None and device.device_id != only):
        return None
    return ServerSentEvent(device.model_dump_json(), event="status")
