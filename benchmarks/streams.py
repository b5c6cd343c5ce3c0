"""Live views under a crowd: one address holding hundreds of streams cannot starve others.

A real redis-server and the real web app (``edgelens web run``, its own process) on free
ports. First a quiet run: a new visitor opens live streams and calls the API, with no
other streams open. Then the crowd: 500 streams asked for from one loopback address
(127.0.0.2) and 500 from 500 others (127.0.1.x, 127.0.2.x), held open and read while
statuses and match records are published; the same visitor (127.0.3.1) measures again.
Reported: how many of each group were served or refused (429), the visitor's answers and
latencies, the web process's resident memory and its connections to Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from benchmarks.common import common_arguments, publish
from benchmarks.workers import EDGELENS
from edgelens.demo.servers import RedisServer, free_port
from edgelens.wire.names import DEVICES_CHANNEL, DEVICES_KEY, matches_channel, matches_key
from edgelens.wire.records import Match, MatchRecord

HOST = "127.0.0.1"
GREEDY = "127.0.0.2"
VISITOR = "127.0.3.1"
DEVICES = [f"cam-{n}" for n in range(20)]
BENCH = "bench-streams"  # the name of this script's own Redis connections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    common_arguments(parser)
    parser.add_argument("--greedy", type=int, default=500, help="streams from one address")
    parser.add_argument("--crowd", type=int, default=500, help="streams, one per address")
    parser.add_argument("--hold-s", type=float, default=20.0, help="how long the crowd stays")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as rds:
        port = free_port()
        env = {
            **os.environ,
            "EDGELENS_DATA_DIR": tmp,
            "EDGELENS_MODELS_DIR": str(args.models_dir.resolve()),
            "EDGELENS_REDIS_URL": rds.url,
            "EDGELENS_WEB__PORT": str(port),
            "EDGELENS_FEATURIZER__PROVIDERS": '["cpu"]',
            "EDGELENS_LOG_LEVEL": "ERROR",
        }
        web = subprocess.Popen([*EDGELENS, "web", "run"], env=env)
        try:
            _wait_ready(f"http://{HOST}:{port}", web)
            client = redis.Redis.from_url(rds.url, decode_responses=True, client_name=BENCH)
            _seed(client)
            quiet = asyncio.run(_visit(port))
            quiet.rss_mb = _rss_mb(web.pid)
            quiet.redis_clients, quiet.subscribers = _redis_clients(client)
            loaded = asyncio.run(_crowd(port, web.pid, client, args))
            client.close()
        finally:
            web.terminate()
            web.wait(timeout=30)
    body = _report(quiet, loaded, args)
    publish("streams", body, write=not args.no_write)


@dataclass
class Visit:
    """What the new visitor saw, and the state of the web process meanwhile."""

    streams: Counter[int]
    stream_ms: list[float]
    api: Counter[int]
    api_ms: list[float]
    rss_mb: float = 0.0
    redis_clients: int = 0
    subscribers: int = 0
    crowd: dict[str, Counter[int]] = field(default_factory=dict)
    open_s: float = 0.0
    events: int = 0


def _wait_ready(url: str, web: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if web.poll() is not None:
            raise RuntimeError(f"the web app exited with {web.returncode}")
        try:
            if httpx.get(f"{url}/api/devices", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the web app did not answer on {url}")


def _seed(client: redis.Redis) -> None:
    for n, device_id in enumerate(DEVICES):
        client.hset(DEVICES_KEY, device_id, _status(device_id, n))
        client.lpush(matches_key(device_id), _record(device_id, 0))


def _status(device_id: str, n: int) -> str:
    state = ("online", "offline")[n % 2]
    return json.dumps({"device_id": device_id, "state": state, "ts": time.time()})


def _record(device_id: str, seq: int) -> str:
    match = Match("coffee", "Coffee", 3.5, "EUR", True, 0.91, True)
    return MatchRecord(device_id, seq, time.time(), "model-x", 40.0, [match], {}).to_json()


class Stream:
    """A live stream over a raw socket from a chosen local address, read until closed."""

    def __init__(self) -> None:
        self.events = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None

    async def open(self, port: int, path: str, local: str) -> int:
        """The HTTP status; a served stream stays open and is read in the background."""
        reader, writer = await asyncio.open_connection(HOST, port, local_addr=(local, 0))
        self._writer = writer
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        if status == 200:
            self._reader_task = asyncio.create_task(self._read(reader))
        else:
            await self.close()
        return status

    async def _read(self, reader: asyncio.StreamReader) -> None:
        marker, tail = b"event: status", b""
        while chunk := await reader.read(65536):
            self.events += (tail + chunk).count(marker)
            tail = chunk[-(len(marker) - 1) :]

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()


async def _timed_stream(port: int, path: str) -> tuple[int, float]:
    stream = Stream()
    started = time.perf_counter()
    status = await stream.open(port, path, VISITOR)
    elapsed = (time.perf_counter() - started) * 1000
    await stream.close()
    return status, elapsed


async def _visit(port: int, streams: int = 50, calls: int = 200) -> Visit:
    """The new visitor: stream opens (time to the status line) and API calls, in turn."""
    visit = Visit(Counter(), [], Counter(), [])
    for n in range(streams):
        device_id = DEVICES[n % len(DEVICES)]
        path = "/api/devices/events" if n % 2 else f"/api/devices/{device_id}/events"
        status, ms = await _timed_stream(port, path)
        visit.streams[status] += 1
        visit.stream_ms.append(ms)
    transport = httpx.AsyncHTTPTransport(local_address=VISITOR)
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}", transport=transport, timeout=30, trust_env=False
    ) as http:
        for n in range(calls):
            path = "/api/devices" if n % 2 else f"/api/devices/{DEVICES[n % 20]}/matches"
            started = time.perf_counter()
            response = await http.get(path)
            visit.api_ms.append((time.perf_counter() - started) * 1000)
            visit.api[response.status_code] += 1
    return visit


async def _crowd(port: int, pid: int, client: redis.Redis, args: argparse.Namespace) -> Visit:
    """Open the crowd's streams (100 requests in flight), publish, measure, close."""
    gate = asyncio.Semaphore(100)
    crowd_addresses = [f"127.0.{1 + n // 250}.{1 + n % 250}" for n in range(args.crowd)]
    asks = [("one address", GREEDY, n) for n in range(args.greedy)]
    asks += [("one each", address, n) for n, address in enumerate(crowd_addresses)]

    async def ask(group: str, local: str, n: int) -> tuple[str, int, Stream]:
        device_id = DEVICES[n % len(DEVICES)]
        path = "/api/devices/events" if n % 2 else f"/api/devices/{device_id}/events"
        stream = Stream()
        async with gate:
            return group, await stream.open(port, path, local), stream

    started = time.perf_counter()
    opened = await asyncio.gather(*(ask(*a) for a in asks))
    open_s = time.perf_counter() - started
    publisher = asyncio.create_task(_publish(client))
    await asyncio.sleep(args.hold_s / 2)
    visit = await _visit(port)
    visit.open_s = open_s
    for group, status, _ in opened:
        visit.crowd.setdefault(group, Counter())[status] += 1
    await asyncio.sleep(args.hold_s / 2)
    publisher.cancel()
    visit.rss_mb = _rss_mb(pid)
    visit.redis_clients, visit.subscribers = _redis_clients(client)
    visit.events = sum(stream.events for _, _, stream in opened)
    await asyncio.gather(*(stream.close() for _, _, stream in opened))
    return visit


async def _publish(client: redis.Redis) -> None:
    """Ten status changes and ten match records a second, as devices and a worker would."""
    seq = 0
    while True:
        seq += 1
        device_id = DEVICES[seq % len(DEVICES)]
        await asyncio.to_thread(client.publish, DEVICES_CHANNEL, _status(device_id, seq))
        await asyncio.to_thread(client.publish, matches_channel(device_id), _record(device_id, seq))
        await asyncio.sleep(0.1)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _redis_clients(client: redis.Redis) -> tuple[int, int]:
    """The web app's connections to Redis (not the script's), and how many subscribe."""
    others = [c for c in client.client_list() if c["name"] != BENCH]
    return len(others), sum(1 for c in others if int(c["sub"]) + int(c["psub"]))


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):.1f} / {p99:.1f}"


def _counts(counter: Counter[int]) -> str:
    return ", ".join(f"{count} x {status}" for status, count in sorted(counter.items()))


def _report(quiet: Visit, loaded: Visit, args: argparse.Namespace) -> str:
    held = sum(c[200] for c in loaded.crowd.values())
    lines = [
        "## Live views under a crowd",
        "",
        f"The web app (`edgelens web run`, default caps: 8 live views per address, 1000 in "
        f"all) and a real Redis. The crowd: {args.greedy} streams asked for from one address "
        f"and {args.crowd} from {args.crowd} other addresses (half the dashboard's, half a "
        f"device's; 100 requests in flight), held {args.hold_s:.0f} s and read while 10 "
        f"statuses and 10 match records a second are published. A new visitor opens 50 "
        f"streams (time to the status line, each closed at once) and makes 200 API calls, "
        f"one after another, in a quiet run and inside the crowd.",
        "",
        "| crowd | asked | answers |",
        "| --- | ---: | --- |",
        *(f"| {group} | {sum(c.values())} | {_counts(c)} |" for group, c in loaded.crowd.items()),
        "",
        "| | quiet | inside the crowd |",
        "| --- | --- | --- |",
        f"| visitor's streams | {_counts(quiet.streams)} | {_counts(loaded.streams)} |",
        f"| stream open p50 / p99 (ms) | {_ms(quiet.stream_ms)} | {_ms(loaded.stream_ms)} |",
        f"| visitor's API calls | {_counts(quiet.api)} | {_counts(loaded.api)} |",
        f"| API call p50 / p99 (ms) | {_ms(quiet.api_ms)} | {_ms(loaded.api_ms)} |",
        f"| web process RSS (MB) | {quiet.rss_mb:.0f} | {loaded.rss_mb:.0f} |",
        f"| its Redis connections (subscribed) | {quiet.redis_clients} ({quiet.subscribers}) "
        f"| {loaded.redis_clients} ({loaded.subscribers}) |",
        "",
        f"The crowd's {held} streams opened in {loaded.open_s:.1f} s and received "
        f"{loaded.events:,} status events between them. Every stream shares the web "
        "process's one Redis subscription; its other Redis connections are the pool's, "
        "opened by the burst of snapshot reads (100 requests in flight) and kept idle for "
        "reuse (at most 100), none held by a stream.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
