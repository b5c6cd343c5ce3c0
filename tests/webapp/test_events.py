"""The SSE streams: a snapshot first, then what the worker publishes, as it happens."""

import dataclasses
import json
import time
from collections.abc import Iterator

import httpx

from edgelens.wire.names import DEVICES_CHANNEL, matches_channel


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    """(event name, JSON data) of each event with data; comments and retry lines skipped."""
    name, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


def wait_unsubscribed(redis_client, channel: str) -> None:
    """The server closes its subscription once the client is gone."""
    deadline = time.monotonic() + 5
    while redis_client.pubsub_numsub(channel)[0][1]:
        assert time.monotonic() < deadline, f"{channel} still subscribed"
        time.sleep(0.05)


def test_device_stream_sends_the_latest_record_then_each_new_one(
    live_url, redis_client, push_record, set_status, make_record
):
    first = make_record("cam", 1)
    push_record(first)
    set_status("cam", "online")
    url = f"{live_url}/api/devices/cam/events"
    with httpx.stream("GET", url, timeout=5) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.iter_lines())
        name, status = next(events)
        assert (name, status["state"]) == ("status", "online")
        assert next(events) == ("message", dataclasses.asdict(first))

        # The snapshot came after the subscription, so nothing published from now is lost.
        second = make_record("cam", 2, "rocket")
        push_record(second)
        push_record(make_record("other-cam", 7))
        set_status("other-cam", "online")
        set_status("cam", "offline")
        assert next(events) == ("message", dataclasses.asdict(second))
        name, status = next(events)
        assert (name, status["device_id"], status["state"]) == ("status", "cam", "offline")
    wait_unsubscribed(redis_client, matches_channel("cam"))


def test_dashboard_stream_sends_every_status_then_changes(live_url, redis_client, set_status):
    set_status("cam-b", "online")
    set_status("cam-a", "offline")
    with httpx.stream("GET", f"{live_url}/api/devices/events", timeout=5) as response:
        events = sse_events(response.iter_lines())
        snapshot = [next(events) for _ in range(2)]
        assert [(name, s["device_id"], s["state"]) for name, s in snapshot] == [
            ("status", "cam-a", "offline"),
            ("status", "cam-b", "online"),
        ]
        set_status("cam-a", "online")
        name, status = next(events)
        assert (name, status["device_id"], status["state"]) == ("status", "cam-a", "online")
    wait_unsubscribed(redis_client, DEVICES_CHANNEL)


def test_stream_ends_with_a_reason_when_redis_goes_away(
    live_url, redis_server, push_record, make_record
):
    push_record(make_record("cam", 1))
    with httpx.stream("GET", f"{live_url}/api/devices/cam/events", timeout=5) as response:
        events = sse_events(response.iter_lines())
        assert next(events)[0] == "message"
        redis_server.stop()
        name, error = next(events)
        assert name == "unavailable"
        assert "Redis at 127.0.0.1" in error["detail"]
        assert list(events) == [], "the stream ends, so the browser reconnects"
    with httpx.Client(base_url=live_url, timeout=5) as http:
        assert http.get("/api/devices/cam/events").status_code == 503
