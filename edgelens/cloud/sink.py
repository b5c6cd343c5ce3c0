"""Where match records and device states go: Redis lists, a hash and pub/sub channels."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

import redis

from edgelens.errors import RedisUnavailableError
from edgelens.wire.names import (
    DEVICES_CHANNEL,
    DEVICES_KEY,
    matches_channel,
    matches_key,
    view_key,
    view_vectors_key,
    views_kept_key,
)
from edgelens.wire.records import MatchRecord, Stage, record_prefix
from edgelens.wire.status import DeviceStatus, RecordedStatus

# A confirmed record replaces its frame's first record where it stands in the list (newest
# first, so the newest entry of that device and seq), and is announced; -1 when the first
# record is no longer there (trimmed after matches_kept newer frames).
_REPLACE_IN_PLACE = """
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
local prefix = ARGV[1]
for i, raw in ipairs(entries) do
  if string.sub(raw, 1, #prefix) == prefix then
    redis.call('LSET', KEYS[1], i - 1, ARGV[2])
    redis.call('PUBLISH', ARGV[3], ARGV[2])
    return i - 1
  end
end
return -1
"""

# A frame's view (and its vectors) kept for ARGV[1] s: KEYS[2..] set from ARGV[3..] and
# listed at the head of the device's kept list KEYS[1]; the keys past the newest ARGV[2]
# there are deleted. Returns how many were.
_KEEP_VIEW = """
local ttl, keep = ARGV[1], tonumber(ARGV[2])
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ttl)
  redis.call('LREM', KEYS[1], 0, KEYS[i])
  redis.call('LPUSH', KEYS[1], KEYS[i])
end
local dropped = redis.call('LRANGE', KEYS[1], keep, -1)
if #dropped > 0 then
  redis.call('DEL', unpack(dropped))
  redis.call('LTRIM', KEYS[1], 0, keep - 1)
end
redis.call('EXPIRE', KEYS[1], ttl)
return #dropped
"""


class RedisSink:
    """Pushes records to their devices' LIFO lists and announces them, in one round trip
    (its scripts sent as EVAL: redis-py's registered scripts would check for them first,
    a round trip more).

    A first answer is pushed at the head; its confirmed answer replaces it in place, so
    the list keeps one entry per answered frame, newest first. A device keeps the views of
    its newest ``matches_kept`` frames (:func:`~edgelens.wire.names.views_kept_key`): a device
    that sends a view with every frame holds no more of Redis than one that sends few.
    """

    def __init__(self, url: str, *, matches_kept: int, views_kept_s: int = 0) -> None:
        self._redis = redis.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=10
        )
        self._kept = matches_kept
        self._views_kept_s = views_kept_s

    def push(
        self,
        records: Sequence[MatchRecord],
        views: Mapping[tuple[str, int], bytes] | None = None,
        vectors: Mapping[tuple[str, int], bytes] | None = None,
    ) -> list[MatchRecord]:
        """Each first record LPUSHed, trimmed and announced; each confirmed one put in its
        first record's place and announced; each of ``views`` (JPEG by (device id, seq))
        kept for ``views_kept_s`` with its frame's ``vectors`` (a message without the
        view) when given; all in one round trip. Returns the records with their final
        latency, and only the confirmed ones that found their place."""
        now = time.time()
        finals = [replace(r, latency_ms=round((now - r.captured_at) * 1000, 3)) for r in records]
        pipe = self._redis.pipeline(transaction=False)
        vectors = vectors or {}
        kept = (views or {}) if self._views_kept_s else {}
        keys_kept = 2 * self._kept  # a view and its vectors a frame
        for (device_id, seq), jpeg in kept.items():
            keys, values = [views_kept_key(device_id), view_key(device_id, seq)], [jpeg]
            if (device_id, seq) in vectors:
                keys.append(view_vectors_key(device_id, seq))
                values.append(vectors[device_id, seq])
            pipe.eval(_KEEP_VIEW, len(keys), *keys, self._views_kept_s, keys_kept, *values)
        for final in finals:
            payload, key = final.to_json(), matches_key(final.device_id)
            channel = matches_channel(final.device_id)
            if final.stage is Stage.CONFIRMED:
                prefix = record_prefix(final.device_id, final.seq)
                pipe.eval(_REPLACE_IN_PLACE, 1, key, prefix, payload, channel)
                continue
            pipe.lpush(key, payload)
            pipe.ltrim(key, 0, self._kept - 1)
            pipe.publish(channel, payload)
        replies = iter(self._execute(pipe))
        for _ in kept:
            next(replies)
        stored = []
        for final in finals:
            if final.stage is Stage.CONFIRMED:
                if next(replies) >= 0:
                    stored.append(final)
            else:
                stored.append(final)
                for _ in range(3):
                    next(replies)
        return stored

    def device_statuses(self, statuses: Sequence[tuple[str, DeviceStatus]]) -> None:
        """Each device's checked status, with its id (the topic's) and when the worker saw
        it, into the devices hash and announced; all in one round trip."""
        seen_at = time.time()
        pipe = self._redis.pipeline(transaction=False)
        for device_id, status in statuses:
            recorded = RecordedStatus.model_validate(
                {**status.model_dump(exclude_none=True), "device_id": device_id, "seen_at": seen_at}
            )
            payload = recorded.model_dump_json(exclude_none=True)
            pipe.hset(DEVICES_KEY, device_id, payload)
            pipe.publish(DEVICES_CHANNEL, payload)
        self._execute(pipe)

    def close(self) -> None:
        self._redis.close()

    @staticmethod
    def _execute(pipe: redis.client.Pipeline) -> list:
        try:
            return pipe.execute()
        except redis.RedisError as exc:
            raise RedisUnavailableError(f"redis: {exc}") from exc
