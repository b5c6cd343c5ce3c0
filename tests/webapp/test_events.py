"""The SSE streams: a snapshot first, then what the worker publishes, as it happens; one
Redis subscription for all of them, and only so many per visitor and in all."""

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
from sse_starlette import ServerSentEvent

from edgelens.settings import Settings
from edgelens.webapp.services.live import Subscription


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


def capped(settings: Settings, **web: int) -> Settings:
    """``settings`` with other stream caps (web.max_streams, web.max_streams_per_client)."""
    return settings.model_copy(update={"web": settings.web.model_copy(update=web)})


def client_at(url: str, address: str) -> httpx.Client:
    """A visitor connecting from its own loopback address (the server sees that peer)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=url, transport=transport, timeout=5, trust_env=False)


def stream_status(client: httpx.Client, path: str) -> int:
    """The status a stream request gets; a stream that opens is closed at once."""
    with client.stream("GET", path) as response:
        return response.status_code


def wait_status(client: httpx.Client, path: str, status: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (got := stream_status(client, path)) != status:
        assert time.monotonic() < deadline, f"{path} still answers {got}, not {status}"
        time.sleep(0.1)


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


def test_stream_ends_with_a_reason_when_redis_goes_away_and_streams_again_when_back(
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
        redis_server.start()  # an empty Redis, on the same port
        wait_status(http, "/api/devices/cam/events", 200)  # the hub subscribed again
        with http.stream("GET", "/api/devices/cam/events") as response:
            events = sse_events(response.iter_lines())
            push_record(make_record("cam", 2))
            name, record = next(events)
            assert (name, record["seq"]) == ("message", 2)


def test_many_streams_share_one_redis_connection(
    serve, web_settings, featurizer, redis_client, set_status
):
    with (
        serve(capped(web_settings, max_streams_per_client=60), featurizer) as url,
        httpx.Client(base_url=url, timeout=5, trust_env=False) as http,
        ExitStack() as streams,
    ):
        assert http.get("/api/devices").status_code == 200
        wait_status(http, "/api/devices/events", 200)
        before = redis_client.info("clients")["connected_clients"]
        paths = ["/api/devices/events"] * 25 + [f"/api/devices/cam-{i}/events" for i in range(25)]
        responses = [streams.enter_context(http.stream("GET", path)) for path in paths]
        assert [r.status_code for r in responses] == [200] * 50

        added = redis_client.info("clients")["connected_clients"] - before
        assert added <= 2, f"50 streams opened {added} more Redis connections"
        subscribers = [c for c in redis_client.client_list() if int(c["sub"]) + int(c["psub"])]
        assert len(subscribers) == 1, "one subscription for every stream"

        # Every dashboard stream and cam-3's own get the change; cam-4's does not.
        set_status("cam-3", "online")
        set_status("cam-4", "offline")
        for response in [*responses[:25], responses[25 + 3]]:
            name, status = next(sse_events(response.iter_lines()))
            assert (name, status["device_id"], status["state"]) == ("status", "cam-3", "online")
        name, status = next(sse_events(responses[25 + 4].iter_lines()))
        assert (name, status["device_id"]) == ("status", "cam-4")


def test_a_visitor_over_its_cap_gets_429_while_others_are_served(serve, web_settings, featurizer):
    with (
        serve(capped(web_settings, max_streams_per_client=3), featurizer) as url,
        client_at(url, "127.0.0.2") as greedy,
        client_at(url, "127.0.0.3") as visitor,
        ExitStack() as streams,
    ):
        wait_status(greedy, "/api/devices/events", 200)
        for path in ("/api/devices/events", "/api/devices/cam/events", "/api/devices/x/events"):
            assert streams.enter_context(greedy.stream("GET", path)).status_code == 200

        refused = greedy.get("/api/devices/cam/events")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert "too many live views open from your address" in refused.json()["detail"]
        assert "close other dashboard tabs" in refused.json()["detail"]

        assert stream_status(visitor, "/api/devices/events") == 200
        assert stream_status(visitor, "/api/devices/cam/events") == 200
        api = [visitor.get("/api/devices"), visitor.get("/api/devices/cam/matches")] * 10
        assert [r.status_code for r in api] == [200] * 20
        assert greedy.get("/api/devices").status_code == 200, "only its streams are capped"


def test_the_process_cap_refuses_any_visitor_past_it(serve, web_settings, featurizer):
    with (
        serve(capped(web_settings, max_streams=2), featurizer) as url,
        client_at(url, "127.0.0.2") as first,
        client_at(url, "127.0.0.3") as second,
        ExitStack() as streams,
    ):
        wait_status(first, "/api/devices/events", 200)
        assert streams.enter_context(first.stream("GET", "/api/devices/events")).status_code == 200
        assert streams.enter_context(second.stream("GET", "/api/devices/events")).status_code == 200
        refused = second.get("/api/devices/cam/events")
        assert refused.status_code == 429
        assert "retry-after" in refused.headers
        assert "as many live views open as it serves (2)" in refused.json()["detail"]


def test_a_stream_frees_its_slot_when_the_client_goes_away(
    serve, web_settings, featurizer, set_status
):
    with (
        serve(capped(web_settings, max_streams_per_client=1), featurizer) as url,
        client_at(url, "127.0.0.2") as http,
    ):
        wait_status(http, "/api/devices/events", 200)
        with http.stream("GET", "/api/devices/events") as response:
            assert response.status_code == 200
            assert http.get("/api/devices/cam/events").status_code == 429
            set_status("cam", "online")  # the stream is live, and now busy, when it goes
            assert next(sse_events(response.iter_lines()))[0] == "status"
        # The client hung up: its slot comes back, every time.
        for _ in range(3):
            wait_status(http, "/api/devices/cam/events", 200, timeout=5)


def test_a_slow_stream_loses_its_oldest_events_not_memory():
    subscription = Subscription(client="127.0.0.2", device_id=None, size=2)
    for n in range(5):
        subscription.push(ServerSentEvent(str(n)))
    queued = [subscription.queue.get_nowait().data for _ in range(subscription.queue.qsize())]
    assert (queued, subscription.dropped) == (["3", "4"], 3)
