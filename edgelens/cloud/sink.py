"""Where match records and device states go: Redis lists, a hash and pub/sub channels."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace

import redis

from edgelens.errors import RedisUnavailableError
from edgelens.wire.names import DEVICES_CHANNEL, DEVICES_KEY, matches_channel, matches_key
from edgelens.wire.records import MatchRecord


class RedisSink:
    """Pushes records to their devices' LIFO lists and announces them, in one round trip."""

    def __init__(self, url: str, *, matches_kept: int) -> None:
        self._redis = redis.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=10
        )
        self._kept = matches_kept

    def push(self, records: Sequence[MatchRecord]) -> list[MatchRecord]:
        """LPUSH + LTRIM + PUBLISH of each record, all in one round trip; returns the
        records with their final latency."""
        now = time.time()
        finals = [replace(r, latency_ms=round((now - r.captured_at) * 1000, 3)) for r in records]
        pipe = self._redis.pipeline(transaction=False)
        for final in finals:
            payload = final.to_json()
            pipe.lpush(matches_key(final.device_id), payload)
            pipe.ltrim(matches_key(final.device_id), 0, self._kept - 1)
            pipe.publish(matches_channel(final.device_id), payload)
        self._execute(pipe)
        return finals

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
