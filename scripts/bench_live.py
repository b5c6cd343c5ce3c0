"""The live path on loopback: frame capture → Redis record → match visible in the browser.

Real redis-server and mosquitto on free ports, the real worker, the real web app under
uvicorn and headless Chromium on the device page. The script plays the device: it
reads frames of the demo camera video at the video's pace, featurizes each with the ONNX
featurizer and codes its focus view (as a device does for each frame it publishes), and
publishes it with the device's FeaturePublisher, so each frame's featurize time is known
and can be split off; the worker makes the focus view's vector and verifies. A
MutationObserver in the page stamps the moment each record's sequence number appears in
the DOM.

Baselines in the same run: message sizes against the comma-separated text vectors of
the earlier systems, and the screen delay a 10 s poller would have given for the very
same records (poll instants at a random phase, applied to the measured push times).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import redis
from pydantic import AnyUrl

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import common_arguments, write_section

from edgelens.cloud.worker import Worker
from edgelens.demo.runner import WebServer, build_sample_catalog, camera_video
from edgelens.demo.servers import MosquittoServer, RedisServer
from edgelens.device.publisher import FeaturePublisher
from edgelens.featurizer.focus import focus_view_jpeg
from edgelens.featurizer.runtime import load_featurizer
from edgelens.settings import Settings
from edgelens.wire.features import MAX_JPEG_BYTES, FeatureMessage, WireDtype, encode
from edgelens.wire.names import matches_channel, matches_key
from edgelens.wire.records import MatchRecord
from tests.webapp.chromium import headless_chromium

DEVICE_ID = "bench-cam"
OBSERVER_JS = """
window.__seen = {};
const stamp = () => {
  const el = document.getElementById('latest');
  if (el && el.dataset.seq && !(el.dataset.seq in window.__seen)) {
    window.__seen[el.dataset.seq] = performance.timeOrigin + performance.now();
  }
};
new MutationObserver(stamp).observe(document.body,
  {subtree: true, childList: true, attributes: true, attributeFilter: ['data-seq']});
stamp();
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--no-browser", action="store_true")
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    runs = {verify: _run(args, verify=verify) for verify in (False, True)}
    body = _report(*runs[True]) + "\n\n" + _comparison(runs)
    print(body)
    if not args.no_write:
        write_section("live-path", "## Live path latency and message size\n\n" + body)


def _run(args: argparse.Namespace, *, verify: bool) -> tuple:
    """One pass of the video through the whole path, the worker verifying or not."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        RedisServer() as redis_server,
        MosquittoServer() as broker,
    ):
        settings = Settings(
            worker={"matches_kept": args.frames},
            # The baseline answers from the frame's vector alone, as the earlier systems did.
            search={"verify": verify, "view_focus": verify},
            data_dir=Path(tmp),
            models_dir=args.models_dir.resolve(),
            redis_url=AnyUrl(redis_server.url),
            mqtt_url=AnyUrl(broker.url),
        )
        featurizer = load_featurizer(settings)
        build_sample_catalog(settings, featurizer)
        worker = Worker(settings)
        worker.start()
        web = WebServer(settings, featurizer)
        web.start()
        browser = None if args.no_browser else _open_page(f"{web.url}/devices/{DEVICE_ID}")
        announced = _Listener(redis_server.url)
        try:
            frames = _read_video(camera_video(Path(tmp) / "demo"), args.frames)
            featurize_ms = _play_device(settings, featurizer, frames, worker)
            seen = browser.execute_script("return window.__seen;") if browser else {}
        finally:
            announced.stop()
            if browser:
                browser.quit()
            web.stop()
            worker.stop()
        client = redis.Redis.from_url(redis_server.url)
        records = [MatchRecord.from_json(r) for r in client.lrange(matches_key(DEVICE_ID), 0, -1)]
        client.close()
    return records, featurize_ms, seen, announced.arrivals, frames[0]


def _comparison(runs: dict[bool, tuple]) -> str:
    """The same video and messages, the worker verifying (the default) or not."""
    lines = [
        "Baseline in the same run: the worker with `search.verify = false` and "
        "`search.view_focus = false` (the same messages, answered from the frame's vector "
        "alone).",
        "",
        "| worker | capture → Redis record p50 / p99 ms | capture → DOM p50 / p99 ms | "
        "records verified |",
        "| --- | ---: | ---: | ---: |",
    ]
    for verify, (records, _, seen, arrivals, _) in runs.items():
        to_redis = [(arrivals[r.seq] - r.captured_at) * 1000 for r in records if r.seq in arrivals]
        to_dom = [seen[str(r.seq)] - r.captured_at * 1000 for r in records if str(r.seq) in seen]
        verified = sum("verify" in r.stages_ms for r in records)
        lines.append(
            f"| {'focus view + verification (default)' if verify else 'frame vector only'} | "
            f"{_pct(to_redis, 50):.1f} / {_pct(to_redis, 99):.1f} | "
            f"{_pct(to_dom, 50):.1f} / {_pct(to_dom, 99):.1f} | {verified} of {len(records)} |"
        )
    return "\n".join(lines)


def _read_video(path: Path, limit: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        frames.append(frame)
    capture.release()
    return frames


def _play_device(settings: Settings, featurizer, frames, worker: Worker) -> dict[int, float]:
    """Capture-time stamp → featurize → publish, at 15 fps like the demo camera."""
    deadline = time.monotonic() + 10
    while not worker.subscribed.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    featurize_ms: dict[int, float] = {}
    publisher = FeaturePublisher(
        mqtt_url=str(settings.mqtt_url),
        device_id=DEVICE_ID,
        model_id=featurizer.model_id,
        provider=featurizer.provider,
        wire_dtype=WireDtype.FLOAT16,
        reconnect_initial_s=0.5,
        reconnect_max_s=5,
    )
    with publisher:
        publisher.wait_connected(10)
        time.sleep(1.0)  # the page subscribes to its event stream
        interval = 1 / 15
        next_at = time.monotonic()
        for seq, frame in enumerate(frames, start=1):
            captured_at = time.time()
            started = time.perf_counter()
            # As a device sends a published frame: its vector and its focus view.
            (vector,) = featurizer.embed([frame])
            view = focus_view_jpeg(frame, MAX_JPEG_BYTES)
            featurize_ms[seq] = (time.perf_counter() - started) * 1000
            publisher.publish(
                FeatureMessage(
                    DEVICE_ID, seq, captured_at, featurizer.model_id, vector, verify_jpeg=view
                )
            )
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        time.sleep(1.0)  # the last records reach Redis and the page
    return featurize_ms


def _open_page(url: str):
    browser = headless_chromium(Path(tempfile.mkdtemp(prefix="edgelens-chrome-")))
    browser.get(url)
    browser.execute_script(OBSERVER_JS)
    return browser


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class _Listener:
    """Stamps when each record's announcement reaches a Redis subscriber (what the web app sees)."""

    def __init__(self, url: str) -> None:
        self.arrivals: dict[int, float] = {}
        self._client = redis.Redis.from_url(url)
        self._pubsub = self._client.pubsub()
        self._pubsub.subscribe(**{matches_channel(DEVICE_ID): self._on_message})
        self._thread = self._pubsub.run_in_thread(sleep_time=0.01, daemon=True)

    def _on_message(self, message: dict) -> None:
        self.arrivals[MatchRecord.from_json(message["data"]).seq] = time.time()

    def stop(self) -> None:
        self._thread.stop()
        self._thread.join(timeout=2)
        self._pubsub.close()
        self._client.close()


def _report(records, featurize_ms, seen, arrivals, frame: np.ndarray) -> str:
    by_seq = {r.seq: r for r in records}
    stage_rows = []
    per_stage: dict[str, list[float]] = {
        k: []
        for k in (
            "featurize (frame) + focus view JPEG",
            "publish (encode + MQTT)",
            "worker queue",
            "decode",
            "focus (the view's vector)",
            "search",
            "verify",
            "push (Redis)",
            "capture → Redis record",
        )
    }
    for seq, record in by_seq.items():
        st = record.stages_ms
        feat = featurize_ms.get(seq)
        if feat is None:
            continue
        worker_part = sum(st.get(k, 0.0) for k in ("queue", "decode", "focus", "search", "verify"))
        per_stage["featurize (frame) + focus view JPEG"].append(feat)
        per_stage["publish (encode + MQTT)"].append(st["transit"] - feat)
        per_stage["worker queue"].append(st["queue"])
        per_stage["decode"].append(st["decode"])
        per_stage["focus (the view's vector)"].append(st.get("focus", 0.0))
        per_stage["search"].append(st["search"])
        per_stage["verify"].append(st.get("verify", 0.0))
        if seq not in arrivals:
            continue
        announced_ms = (arrivals[seq] - record.captured_at) * 1000
        per_stage["push (Redis)"].append(announced_ms - st["transit"] - worker_part)
        per_stage["capture → Redis record"].append(announced_ms)
    for name, values in per_stage.items():
        stage_rows.append(f"| {name} | {_pct(values, 50):.2f} | {_pct(values, 99):.2f} |")

    dom = [
        seen[str(seq)] - by_seq[seq].captured_at * 1000 - featurize_ms[seq]
        for seq in by_seq
        if str(seq) in seen and seq in featurize_ms
    ]
    dom_total = [
        seen[str(seq)] - by_seq[seq].captured_at * 1000 for seq in by_seq if str(seq) in seen
    ]
    pushed = sorted(r.captured_at + r.latency_ms / 1000 for r in records)
    rng = np.random.default_rng(0)
    phase = rng.uniform(0, 10)
    poll = [((np.floor((p - phase) / 10) + 1) * 10 + phase - p) * 1000 for p in pushed]

    vector = np.random.default_rng(1).normal(size=1280).astype(np.float32)
    vector /= np.linalg.norm(vector)
    message = FeatureMessage(
        DEVICE_ID, 1, time.time(), "efficientnet-lite0-fp32-be060c22de2f", vector
    )
    text = ",".join(f"{v:.6f}" for v in vector).encode()
    sizes = {d.name.lower(): len(encode(message, d)) for d in WireDtype}
    with_focus = len(encode(dataclasses.replace(message, focus_embedding=vector)))
    with_view = len(
        encode(dataclasses.replace(message, verify_jpeg=focus_view_jpeg(frame, MAX_JPEG_BYTES)))
    )

    lines = [
        f"{len(records)} frames of the demo camera video at 15 fps, 640x480, FP32 featurizer "
        "on the CPU (2 threads), one worker, catalog of 20 items, loopback.",
        "",
        "Stages: featurize (device), publish (encode, MQTT to the worker), queue, decode, "
        "the focus view's vector, search and verify (worker), push (LPUSH/LTRIM/PUBLISH "
        "until a Redis subscriber has the record).",
        "",
        "| stage (per frame) | p50 ms | p99 ms |",
        "| --- | ---: | ---: |",
        *stage_rows,
        "",
        "| capture → match visible in the page's DOM (headless Chromium, SSE) | p50 ms | p99 ms |",
        "| --- | ---: | ---: |",
        f"| total | {_pct(dom_total, 50):.1f} | {_pct(dom_total, 99):.1f} |",
        f"| beyond the featurize time | {_pct(dom, 50):.1f} | {_pct(dom, 99):.1f} |",
        f"| baseline: a page polling every 10 s, same records | {_pct(poll, 50):.0f} "
        f"| {_pct(poll, 99):.0f} |",
        "",
        f"Frames seen in the DOM: {len(dom_total)} of {len(records)} records (the page shows the "
        "newest record; frames overtaken between two paints are not stamped).",
        "",
        "| message for one 1280-d vector | bytes | vs text |",
        "| --- | ---: | ---: |",
        f"| seed systems' comma-separated text | {len(text)} | 1.00x |",
        *(
            f"| edgelens wire v1, {name} | {size} | {len(text) / size:.1f}x smaller |"
            for name, size in sizes.items()
        ),
        f"| edgelens wire v2 (frame + focus box), float16 | {with_focus} "
        f"| {len(text) / with_focus:.1f}x smaller |",
        f"| edgelens wire v3 (frame + colour focus view, what a device sends by default), "
        f"float16 | {with_view} | {with_view / len(text):.1f}x larger |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
