"""Where match records and device states go: Redis lists, a hash and pub/sub channels."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import redis

from edgelens.errors import RedisUnavailableError
from edgelens.wire.names import DEVICES_CHANNEL, DEVICES_KEY, matches_channel, matches_key
from edgelens.wire.records import MatchRecord


class RedisSink:
    """Pushes each record to its device's LIFO list and announces it, in one round trip."""

    def __init__(self, url: str, *, matches_kept: int) -> None:
        self._redis = redis.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=10
        )
        self._kept = matches_kept

    def push(self, record: MatchRecord) -> MatchRecord:
        """LPUSH + LTRIM + PUBLISH; returns the record with its final latency."""
        final = replace(record, latency_ms=round((time.time() - record.captured_at) * 1000, 3))
        payload = final.to_json()
        pipe = self._redis.pipeline(transaction=False)
        pipe.lpush(matches_key(record.device_id), payload)
        pipe.ltrim(matches_key(record.device_id), 0, self._kept - 1)
        pipe.publish(matches_channel(record.device_id), payload)
        self._execute(pipe)
        return final

    def device_status(self, device_id: str, status: dict[str, object]) -> None:
        payload = json.dumps({**status, "device_id": device_id, "seen_at": time.time()})
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(DEVICES_KEY, device_id, payload)
        pipe.publish(DEVICES_CHANNEL, payload)
        self._execute(pipe)

    def close(self) -> None:
        self._redis.close()

    @staticmethod
    def _execute(pipe: redis.client.Pipeline) -> None:
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise RedisUnavailableError(f"redis: {exc}") from exc
