"""The Redis sink through a real redis-server: a device keeps the views of its newest
frames only, however many it sends."""

from __future__ import annotations

import redis

from edgelens.cloud.sink import RedisSink
from edgelens.wire.names import view_key, view_vectors_key, views_kept_key


def test_a_device_keeps_the_views_of_its_newest_frames_only(redis_server):
    sink = RedisSink(redis_server.url, matches_kept=3, views_kept_s=60)
    rdb = redis.Redis.from_url(redis_server.url)
    try:
        for seq in range(1, 6):
            sink.push([], {("flood", seq): b"view %d" % seq}, {("flood", seq): b"vectors"})
        sink.push([], {("quiet", 1): b"quiet view"})  # another device, a view alone
        sink.push([], {("flood", 4): b"again"}, {("flood", 4): b"vectors"})  # 4 sent again
        kept = {key.decode() for key in rdb.keys("edgelens:view*:flood:*")}
        assert kept == {view_key("flood", s) for s in (3, 4, 5)} | {
            view_vectors_key("flood", s) for s in (3, 4, 5)
        }
        assert rdb.get(view_key("flood", 4)) == b"again"
        assert rdb.llen(views_kept_key("flood")) == 6, "each key listed once"
        assert 0 < rdb.ttl(views_kept_key("flood")) <= 60
        assert rdb.get(view_key("quiet", 1)) == b"quiet view"
    finally:
        sink.close()
        rdb.close()
