"""Faults, recovered automatically, and how long each recovery takes.

A device loop plays the demo camera video (15 fps, gating off) through real mosquitto and
worker(s) into a real Redis. Each fault is injected while frames flow; the recovery time
is from the moment the failed part is back (or, for a killed worker, from the kill) to
the first new match record in Redis. Faults: the broker restarts, Redis restarts, one of
two worker processes is killed (SIGKILL), and the only worker is killed and restarted. A
camera that is unplugged or a stream that drops is retried with backoff (tests/device) but
not timed here: this machine has no camera or stream server, and a recorded source (the
folder of frames the device plays) that vanishes ends the device by design.

The hostile run (section "hostile"): a quiet device sends frames at 2 fps to a fresh
worker, alone, then while a hostile device (a process of its own) floods 4 KB statuses,
feature messages carrying a bomb view (a 2.5 KB JPEG header claiming 8000x8000) and 200 KB
of bytes, each as fast as the broker takes them, in rounds; the quiet device's share of
answers and first-answer latency are measured beside each other, on a broker configured
as today and on one with the max_packet_size it had before.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import paho.mqtt.client as mqtt
import redis

from benchmarks.common import common_arguments, p50_p99, publish
from benchmarks.workers import EDGELENS
from edgelens.demo.runner import DEMO_ITEMS, build_sample_catalog, camera_video
from edgelens.demo.servers import MosquittoServer, RedisServer, free_port
from edgelens.device.loop import DeviceLoop
from edgelens.featurizer.runtime import Featurizer
from edgelens.settings import DeviceSettings, Settings
from edgelens.testing.bombs import bomb_view
from edgelens.wire.features import FeatureMessage, encode
from edgelens.wire.mqtt import connect_async, make_client
from edgelens.wire.names import features_topic, matches_channel, matches_key, status_topic
from edgelens.wire.records import MatchRecord, Stage

DEVICE = "fault-cam"
OUTAGE_S = 3.0
QUIET, HOSTILE = "quiet-cam", "hostile-cam"
QUIET_FPS = 2.0
# Messages a hostile publisher hands its client before waiting for the last one to be
# written out: as fast as the broker takes them, without growing the client's queue.
HOSTILE_WINDOW = 50
HOSTILE_FLOODS = ("statuses", "bomb views", "200 KB payloads")
# The brokers the hostile run compares (MosquittoServer's settings): as it was, a 200 KB
# payload read whole then dropped for its size and Nagle's algorithm on; then the payload
# ending its sender's connection unread; then, as now, TCP_NODELAY too.
HOSTILE_BROKERS = {
    "256 KB packets, Nagle on (before)": {"max_packet_size": 256 * 1024, "tcp_nodelay": False},
    "packets just above message_size_limit, Nagle on": {"tcp_nodelay": False},
    "the same, and TCP_NODELAY (now)": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    common_arguments(parser)
    parser.add_argument(
        "--runs", nargs="+", choices=["faults", "hostile"], default=["faults", "hostile"]
    )
    parser.add_argument("--hostile-seconds", type=float, default=30.0, help="each phase")
    parser.add_argument("--hostile-rounds", type=int, default=3, help="alone, then beside")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    featurizer = Featurizer.from_models_dir(args.models_dir, "fp32", providers=["cpu"])
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as rds, MosquittoServer() as broker:
        data = Path(tmp)
        settings = Settings(data_dir=data, models_dir=args.models_dir)
        build_sample_catalog(settings, featurizer, item_ids=DEMO_ITEMS)
        camera = _frames_folder(camera_video(data), data / "camera")
        env = {
            **os.environ,
            "EDGELENS_DATA_DIR": str(data),
            "EDGELENS_MODELS_DIR": str(args.models_dir.resolve()),
            "EDGELENS_REDIS_URL": rds.url,
            "EDGELENS_MQTT_URL": broker.url,
            "EDGELENS_LOG_LEVEL": "ERROR",
        }
        if "hostile" in args.runs:
            hostile = _hostile_run(
                env, featurizer, camera, args.hostile_seconds, args.hostile_rounds
            )
            publish("hostile", hostile, write=not args.no_write)
        if "faults" not in args.runs:
            return
        watch = _Watch(rds.url)
        workers = [_worker(env), _worker(env)]
        device = _Device(camera, featurizer, broker.url)
        try:
            watch.next_record(timeout=120)  # workers loaded, frames flowing
            rows.append(_restart("broker restarts", broker, watch))
            rows.append(_restart("Redis restarts", rds, watch))
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait()
            rows.append(("one of two workers killed", watch.next_record(), "from the kill"))
            workers[1].send_signal(signal.SIGKILL)
            workers[1].wait()
            workers = [_worker(env)]
            rows.append(
                (
                    "the only worker killed, then restarted",
                    watch.next_record(timeout=120),
                    "from the restart: process start and index load",
                )
            )
        finally:
            device.stop()
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)
            watch.close()
    body = _report(rows, device.stats)
    publish("faults", body, write=not args.no_write)


def _frames_folder(video: Path, folder: Path, count: int = 150) -> Path:
    """The video as a folder of JPEG frames, the devices' source."""
    folder.mkdir()
    capture = cv2.VideoCapture(str(video))
    for i in range(count):
        ok, frame = capture.read()
        if not ok:
            break
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), frame)
    capture.release()
    return folder


def _worker(env: dict, port: int | None = None) -> subprocess.Popen:
    port_env = {"EDGELENS_WORKER__METRICS_PORT": str(port or free_port())}
    return subprocess.Popen([*EDGELENS, "cloud", "run"], env={**env, **port_env})


def _hostile_run(
    env: dict, featurizer: Featurizer, camera: Path, seconds: float, rounds: int
) -> str:
    """The quiet device alone, then beside the hostile one, on each broker of
    :data:`HOSTILE_BROKERS` in turn, ``rounds`` times (so a drift of the machine hits all
    alike); each broker has a fresh worker of its own."""
    frames = sorted(camera.glob("*.jpg"))[::10]
    vectors = featurizer.embed([cv2.imread(str(path)) for path in frames])
    served = {name: _Served(env, broker) for name, broker in HOSTILE_BROKERS.items()}
    try:
        for setup in served.values():
            setup.start(featurizer.model_id, vectors)
        for _ in range(rounds):
            for setup in served.values():
                setup.round(seconds, featurizer.model_id, vectors[0])
    finally:
        for setup in served.values():
            setup.close()
    return _hostile_report(served, seconds, rounds)


class _Served:
    """A broker with the given settings, a fresh worker on it, the quiet device, and
    what the rounds on it measured."""

    def __init__(self, env: dict, broker: dict) -> None:
        self._broker = MosquittoServer(**broker)
        self._env = env
        self._port = free_port()
        self._worker: subprocess.Popen | None = None
        self._quiet: _QuietDevice | None = None
        self.alone, self.beside = _Answers(0, []), _Answers(0, [])
        self.sent: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()

    def start(self, model_id: str, vectors: np.ndarray) -> None:
        self._broker.start()
        env = {**self._env, "EDGELENS_MQTT_URL": self._broker.url}
        self._worker = _worker(env, self._port)
        self._quiet = _QuietDevice(env, model_id, vectors)
        _wait_healthy(self._port)

    def round(self, seconds: float, model_id: str, vector: np.ndarray) -> None:
        assert self._quiet is not None, "started"
        self.alone += self._quiet.run(seconds)
        before = _worker_counts(self._port)
        with _HostileDevice(self._broker.url, model_id, vector) as flood:
            self.beside += self._quiet.run(seconds)
        after = _worker_counts(self._port)
        self.sent.update(flood.sent)
        self.counts.update({name: after.get(name, 0) - before.get(name, 0) for name in after})

    def close(self) -> None:
        if self._quiet is not None:
            self._quiet.close()
        if self._worker is not None:
            self._worker.terminate()
            self._worker.wait(timeout=30)
        self._broker.stop()


def _wait_healthy(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the worker on port {port} was not healthy within {timeout:.0f} s")


def _worker_counts(port: int) -> dict[str, float]:
    """The worker's counters by outcome and by refusal reason, from its /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    pattern = r'^edgelens_worker_(messages|rejected)_total\{\w+="(\w+)"\} (\S+)$'
    return {
        f"rejected_{name}" if family == "rejected" else name: float(value)
        for family, name, value in re.findall(pattern, text, re.M)
    }


@dataclass
class _Answers:
    sent: int
    records: list[MatchRecord]  # first answers

    @property
    def latencies_ms(self) -> list[float]:
        """Frame sent to record pushed."""
        return [record.latency_ms for record in self.records]

    def stage_ms(self, name: str) -> list[float]:
        """One stage of the worker's split: transit (sent until the worker's network
        thread has it: the broker and the worker's socket) or queue (the worker's queue)."""
        return [record.stages_ms[name] for record in self.records]

    @property
    def share(self) -> float:
        return len(self.records) / self.sent

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.records else float("nan")

    def __add__(self, other: _Answers) -> _Answers:
        return _Answers(self.sent + other.sent, self.records + other.records)


class _QuietDevice:
    """Sends pre-featurized frames at :data:`QUIET_FPS` and collects their first answers
    from the Redis channel the worker announces them on."""

    def __init__(self, env: dict, model_id: str, vectors: np.ndarray) -> None:
        self._model_id = model_id
        self._vectors = vectors
        self._seq = 0
        self._client = make_client(env["EDGELENS_MQTT_URL"], client_id="bench-quiet")
        connect_async(self._client, env["EDGELENS_MQTT_URL"])
        self._redis = redis.Redis.from_url(env["EDGELENS_REDIS_URL"])

    def run(self, seconds: float) -> _Answers:
        _wait_connected(self._client)
        pubsub = self._redis.pubsub()
        pubsub.subscribe(matches_channel(QUIET))
        sent: set[int] = set()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            self._seq += 1
            vector = self._vectors[self._seq % len(self._vectors)]
            message = FeatureMessage(QUIET, self._seq, time.time(), self._model_id, vector)
            self._client.publish(features_topic(QUIET), encode(message), qos=0)
            sent.add(self._seq)
            time.sleep(max(0.0, started + len(sent) / QUIET_FPS - time.monotonic()))
        answered: dict[int, MatchRecord] = {}
        deadline = time.monotonic() + 3.0  # the last frames' answers
        while time.monotonic() < deadline:
            reply = pubsub.get_message(timeout=0.5)
            if reply is None or reply["type"] != "message":
                continue
            record = MatchRecord.from_json(reply["data"])
            if record.stage is Stage.FIRST and record.seq in sent:
                answered.setdefault(record.seq, record)
        pubsub.close()
        return _Answers(len(sent), list(answered.values()))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._redis.close()


def _wait_connected(client, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not client.is_connected():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no broker within {timeout:.0f} s")
        time.sleep(0.05)


class _HostileDevice:
    """One device flooding its worker from a process of its own (another machine in a
    shop: its client's CPU and interpreter lock are not the quiet device's), at a lower
    priority for the same reason, since here it shares the server's two cores: 4 KB
    statuses, feature messages with a bomb view, and 200 KB payloads, each on a client of
    its own speaking MQTT 3.1.1 (which sets no packet limit for the client to keep to),
    sent as fast as the broker takes them and reconnected at once when the broker closes
    the connection, until the context exits. ``sent`` counts them then, and the
    connections made."""

    def __init__(self, mqtt_url: str, model_id: str, vector: np.ndarray) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._counts = context.Queue()
        self._process = context.Process(
            target=_flood, args=(mqtt_url, model_id, vector, self._stop, self._counts)
        )
        self.sent: dict[str, int] = {}

    def __enter__(self) -> _HostileDevice:
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.sent = self._counts.get(timeout=60)
        self._process.join(30)


def _flood(mqtt_url: str, model_id: str, vector: np.ndarray, stop, counts) -> None:
    """The hostile device's process: the three floods until ``stop``, then their counts."""
    os.nice(10)
    status = {"state": "online", "device_id": HOSTILE, "pad": ""}
    status["pad"] = "x" * (4096 - len(json.dumps(status)))
    status_payload = json.dumps(status).encode()
    bomb = bomb_view()
    oversized = b"EL" + bytes(200 * 1024 - 2)
    floods = {
        "statuses": (status_topic(HOSTILE), lambda seq: status_payload),
        "bomb views": (
            features_topic(HOSTILE),
            lambda seq: encode(
                FeatureMessage(HOSTILE, seq, time.time(), model_id, vector, view_jpeg=bomb)
            ),
        ),
        "200 KB payloads": (features_topic(HOSTILE), lambda seq: oversized),
    }
    sent: Counter[str] = Counter()

    def publish(kind: str) -> None:
        topic, payload = floods[kind]
        client = make_client(
            mqtt_url,
            client_id=f"bench-hostile-{kind.replace(' ', '-')}",
            protocol=mqtt.MQTTv311,
            reconnect_min_s=0.0,
            reconnect_max_s=0.0,
        )
        client.on_connect = lambda *_: sent.update([f"{kind}: connections"])
        client.on_publish = lambda *_: sent.update([kind])  # written out, not only queued
        connect_async(client, mqtt_url)
        seq = 0
        while not stop.is_set():
            if not client.is_connected():
                time.sleep(0.001)
                continue
            for _ in range(HOSTILE_WINDOW):
                seq += 1
                info = client.publish(topic, payload(seq), qos=0)
            # Written out, or the broker has closed the connection (then at once again).
            while info.rc == 0 and not info.is_published() and client.is_connected():
                time.sleep(0.001)
        client.disconnect()
        client.loop_stop()

    threads = [threading.Thread(target=publish, args=(kind,)) for kind in HOSTILE_FLOODS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    counts.put(dict(sent))


def _hostile_report(served: dict[str, _Served], seconds: float, rounds: int) -> str:
    flooded_s = seconds * rounds
    rows, notes = [], []
    for name, run in served.items():
        for phase, answers in (("alone", run.alone), ("beside the hostile device", run.beside)):
            rows.append(
                f"| {name} | {phase} | {answers.sent} | {answers.share:.1%} | "
                f"{p50_p99(answers.latencies_ms)} | {p50_p99(answers.stage_ms('transit'))} | "
                f"{p50_p99(answers.stage_ms('queue'))} |"
            )
        flood = ", ".join(
            f"{run.sent[kind]:,} {kind} ({run.sent[kind] / flooded_s:,.0f}/s) on "
            f"{run.sent[f'{kind}: connections']:,} connections"
            for kind in HOSTILE_FLOODS
        )
        refused = ", ".join(
            f"{key.removeprefix('rejected_')} {int(value):,}"
            for key, value in sorted(run.counts.items())
            if value and key in _HOSTILE_COUNTS
        )
        ratio = run.beside.percentile(99) / run.alone.percentile(99)
        notes.append(
            f"{name}: p99 beside the hostile device {ratio:.2f}x alone. The hostile device "
            f"sent {flood}. The worker meanwhile: {refused}."
        )
    return "\n".join(
        [
            "## One hostile device beside a quiet one",
            "",
            f"A quiet device sends pre-featurized frames (float16 vectors of the demo camera "
            f"video) at {QUIET_FPS:.0f} fps to one `edgelens cloud run` worker for "
            f"{seconds:.0f} s alone, then {seconds:.0f} s while a hostile device floods on "
            "three MQTT clients, each as fast as mosquitto takes them and reconnecting at "
            "once when the broker closes its connection: 4 KB statuses; feature messages "
            "carrying a bomb view (a 2.5 KB JPEG header, lossless-looking, claiming "
            "8000x8000 pixels); 200 KB payloads (above the broker's message_size_limit). "
            f"{rounds} rounds on each broker in turn, pooled; each broker has a worker of its "
            "own. The brokers differ in max_packet_size, 256 KB before (a 200 KB payload is "
            "read whole, then dropped) and 1 KB above message_size_limit now (it closes the "
            "sender's connection unread), and in set_tcp_nodelay, off before (Nagle's "
            "algorithm holds a small frame to the worker back while earlier bytes are "
            "unacknowledged) and on now. Every client here sets TCP_NODELAY itself, as "
            "edgelens's do now; the quiet device sends too seldom, and the worker too "
            "little, for Nagle to hold them back. Broker, Redis, worker and both devices "
            "share the machine's 2 cores; the hostile device runs in a process of its own at "
            "nice 10 (in a shop it is another machine, and its client's CPU is not the "
            "server's). First answer: the frame's send to its first record pushed to Redis; "
            "transit: until the worker's network thread has it (the broker, the worker's "
            "socket); queue: then in the worker's bounded queue. "
            "Targets: at least 95% answered, p99 within 2x quiet.",
            "",
            "| broker | quiet device | frames sent | answered | first answer p50 / p99 ms | "
            "of which transit | of which the worker's queue |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            "\n\n".join(notes),
        ]
    )


# The worker counters the hostile run reports (edgelens_worker_messages and _rejected).
_HOSTILE_COUNTS = (
    "received",
    "matched",
    "dropped",
    "rejected_rate_limited",
    "rejected_oversized",
    "rejected_bad_status",
    "status_coalesced",
    "status_recorded",
    "confirm_unusable_view",
)


def _restart(name: str, server, watch: _Watch) -> tuple[str, float, str]:
    server.stop()
    time.sleep(OUTAGE_S)
    server.start()
    return name, watch.next_record(), f"from its return after {OUTAGE_S:.0f} s away"


class _Device:
    def __init__(self, video: Path, featurizer: Featurizer, mqtt_url: str) -> None:
        settings = DeviceSettings(
            device_id=DEVICE,
            source=str(video),
            loop=True,
            gating=False,
            reconnect_initial_s=0.2,
            reconnect_max_s=1.0,
        )
        self._loop = DeviceLoop(device=settings, featurizer=featurizer, mqtt_url=mqtt_url)
        self._thread = threading.Thread(target=self._loop.run, daemon=True)
        self._thread.start()
        self.stats = None

    def stop(self) -> None:
        self._loop.stop.set()
        self._thread.join(30)
        self.stats = self._loop.stats


class _Watch:
    """Polls the device's newest match record; survives Redis restarting under it."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def _newest(self) -> tuple[int, float] | None:
        try:
            raw = self._client.lindex(matches_key(DEVICE), 0)
        except redis.RedisError:
            return None
        return None if raw is None else (MatchRecord.from_json(raw).seq, time.monotonic())

    def next_record(self, timeout: float = 60.0) -> float:
        """Seconds until a record newer than the current newest appears."""
        started = time.monotonic()
        current = self._newest()
        while time.monotonic() - started < timeout:
            newest = self._newest()
            if newest is not None and (current is None or newest[0] != current[0]):
                return time.monotonic() - started
            time.sleep(0.01)
        raise RuntimeError(f"no new match record within {timeout:.0f} s")

    def close(self) -> None:
        self._client.close()


def _report(rows, stats) -> str:
    lines = [
        "## Faults and recovery",
        "",
        "A device loop (demo camera video, 15 fps, gating off) → real mosquitto → "
        "`edgelens cloud run` worker processes → real Redis; each fault injected while "
        "frames flow. Recovery: until the first new match record is in Redis. Nothing is "
        "restarted by hand except the failed part itself.",
        "",
        "| fault | recovered in | measured |",
        "| --- | ---: | --- |",
        *(f"| {name} | {seconds:.2f} s | {what} |" for name, seconds, what in rows),
    ]
    if stats is not None:
        lines += [
            "",
            f"Device over the run: {stats.captured} frames captured, {stats.published} "
            f"published, {stats.unsent} dropped while the broker was away (the newest was "
            "held and sent on reconnect). A camera unplugged or a stream dropped is retried "
            "with backoff (tested in tests/device), not timed here: this machine has no camera "
            "or stream server, and the recorded source played here ends the device if it "
            "vanishes, by design.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
