"""Faults, recovered automatically, and how long each recovery takes.

A device loop plays the demo camera video (15 fps, gating off) through real mosquitto and
worker(s) into a real Redis. Each fault is injected while frames flow; the recovery time
is from the moment the failed part is back (or, for a killed worker, from the kill) to
the first new match record in Redis. Faults: the broker restarts, Redis restarts, one of
two worker processes is killed (SIGKILL), the only worker is killed and restarted, and
the camera (a folder of the video's frames) disappears for 3 s and comes back.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import common_arguments, write_section
from loadlib import EDGELENS

from edgelens.demo.runner import DEMO_ITEMS, build_sample_catalog, camera_video
from edgelens.demo.servers import MosquittoServer, RedisServer, free_port
from edgelens.device.loop import DeviceLoop
from edgelens.featurizer.runtime import Featurizer
from edgelens.settings import DeviceSettings, Settings
from edgelens.wire.names import matches_key
from edgelens.wire.records import MatchRecord

DEVICE = "fault-cam"
OUTAGE_S = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    common_arguments(parser)
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
            hidden = camera.with_name("unplugged")
            camera.rename(hidden)
            time.sleep(OUTAGE_S)
            hidden.rename(camera)
            rows.append(("camera gone 3 s, then back", watch.next_record(), "from its return"))
        finally:
            device.stop()
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)
            watch.close()
    body = _report(rows, device.stats)
    print(body)
    if not args.no_write:
        write_section("faults", body)


def _frames_folder(video: Path, folder: Path, count: int = 150) -> Path:
    """The video as a folder of JPEG frames: a camera that can be unplugged (renamed away)
    while it plays, which an open video file cannot."""
    folder.mkdir()
    capture = cv2.VideoCapture(str(video))
    for i in range(count):
        ok, frame = capture.read()
        if not ok:
            break
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), frame)
    capture.release()
    return folder


def _worker(env: dict) -> subprocess.Popen:
    port_env = {"EDGELENS_WORKER__METRICS_PORT": str(free_port())}
    return subprocess.Popen([*EDGELENS, "cloud", "run"], env={**env, **port_env})


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
            f"held and sent on reconnect), {stats.source_failures} failed opens/reads of the "
            "camera, each retried with backoff.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
