"""The live path on loopback: frame capture → Redis record → match visible in the browser.

Real redis-server and mosquitto on free ports, the real worker, the real web app under
uvicorn and headless Chromium on the device page. The script plays the device: it
reads frames of the demo camera video at the video's pace, featurizes each with the ONNX
featurizer (one thread, as docs/device.md advises for a machine that also runs the worker),
publishes every frame (gating off, so each is timed) with the device's
FeaturePublisher, and attaches the focus view when the device's own rule says the view has
settled (edgelens.device.settle), so each frame's featurize time is known and can be split
off. The worker answers each message from its vector at once (stage one) and confirms a
settled view (stage two). A MutationObserver in the page stamps the moment each record's
sequence number and stage appear in the DOM (a confirmation of a frame that is no longer
on top: its history line).

Baselines in the same run: the answer as it was before the two stages (every frame with its
view, answered after its verification: its confirmed record), the vector alone (no view,
no verification), message sizes against the comma-separated text vectors of the earlier
systems, and the screen delay a 10 s poller would have given for the very same records.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import redis
from pydantic import AnyUrl

from benchmarks.common import common_arguments, median_seconds, p50_p99, publish
from edgelens.cloud import serving
from edgelens.cloud.worker import Worker
from edgelens.demo.runner import WebServer, build_sample_catalog, camera_video
from edgelens.demo.servers import MosquittoServer, RedisServer
from edgelens.device.publisher import FeaturePublisher
from edgelens.device.settle import ViewSettle
from edgelens.featurizer.focus import focus_view_jpeg
from edgelens.featurizer.runtime import load_featurizer
from edgelens.settings import VIEW_BYTES, DeviceSettings, Settings
from edgelens.testing.browser import headless_chromium
from edgelens.wire.features import FeatureMessage, WireDtype, decode, encode
from edgelens.wire.names import matches_channel, matches_key
from edgelens.wire.records import MatchRecord, Stage

DEVICE_ID = "bench-cam"
OBSERVER_JS = """
window.__seen = {};
const stamp = () => {
  const now = performance.timeOrigin + performance.now();
  const el = document.getElementById('latest');
  const key = el && `${el.dataset.seq}:${el.dataset.stage}`;
  if (el && el.dataset.seq && !(key in window.__seen)) window.__seen[key] = now;
  // a confirmation of a frame no longer on top shows in its history line
  for (const row of document.querySelectorAll('#history [data-stage="confirmed"]')) {
    const confirmed = `${row.dataset.seq}:confirmed`;
    if (!(confirmed in window.__seen)) window.__seen[confirmed] = now;
  }
};
new MutationObserver(stamp).observe(document.body,
  {subtree: true, childList: true, attributes: true, attributeFilter: ['data-seq', 'data-stage']});
stamp();
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument(
        "--confirm-frames",
        type=int,
        default=3600,
        help="frames of the run that confirms every settled view (the video looped): "
        "enough settled views (about 80) that stage two's p99 is not its slowest one",
    )
    parser.add_argument(
        "--device-threads",
        type=int,
        default=1,
        help="the device's featurizer threads: 1, as docs/device.md advises for a machine "
        "that runs the worker too (here the device shares the worker's two cores)",
    )
    parser.add_argument("--no-browser", action="store_true")
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    runs = {mode: _run(args, mode=mode) for mode in MODES}
    body = _report(*runs[CONFIRM_ALL], device_threads=args.device_threads)
    body += "\n\n" + _comparison(runs)
    publish(
        "live-path", "## Live path latency and message size\n\n" + body, write=not args.no_write
    )


BEFORE = "before: verified answer, a view with every frame"
CONFIRM_ALL = "two stages, every settled view confirmed"
# How the device sends and the worker answers, per run: (views, search settings, the
# wire dtype when not the device's default).
MODES: dict[str, tuple[str, dict, WireDtype | None]] = {
    "two stages (default)": ("on settle", {}, None),
    "two stages, int8 vectors (the default before deflate)": ("on settle", {}, WireDtype.INT8),
    CONFIRM_ALL: ("on settle", {"confirm_margin": 2.0}, None),
    BEFORE: ("every frame", {"confirm_margin": 2.0}, None),
    "vector alone": ("never", {"verify": False, "view_focus": False}, None),
}


def _run(args: argparse.Namespace, *, mode: str) -> tuple:
    """One pass of the video through the whole path, as ``mode`` sends and answers it."""
    views, search, wire = MODES[mode]
    count = args.confirm_frames if mode == CONFIRM_ALL else args.frames
    # The worker before the two stages verified every message's view, the same view again
    # included: its same-view guard off.
    same_view = 1.01 if mode == BEFORE else serving.SAME_VIEW_COSINE
    with (
        mock.patch.object(serving, "SAME_VIEW_COSINE", same_view),
        tempfile.TemporaryDirectory() as tmp,
        RedisServer() as redis_server,
        MosquittoServer() as broker,
    ):
        settings = Settings(
            worker={"matches_kept": count},
            search=search,
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
            frames = _read_video(camera_video(Path(tmp) / "demo"), count)
            device = load_featurizer(settings, threads=args.device_threads)
            featurize_ms, sizes = _play_device(settings, device, frames, worker, views, wire)
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
    return (
        records,
        featurize_ms,
        seen,
        announced.arrivals,
        frames[0],
        featurizer.embed([frames[0]])[0],
        sizes,
        worker.stats.snapshot(),
    )


def _comparison(runs: dict[str, tuple]) -> str:
    """The same video, sent and answered as each mode says."""
    lines = [
        "Each row one run of the same video: the default (the view once settled; the first "
        "answer from the vector at once, confirmed when the view could change it: not when it "
        "is a match leading the next item by search.confirm_margin, which every settled view "
        "of this video is); the same with the vectors coded as int8 (the default before they "
        "were deflated); the same with every settled view confirmed (confirm_margin = 2), "
        "over the video looped for more settled views, to time stage two; the answer as it "
        "was before (every frame with its view, every "
        "view verified, answered once verified: its confirmed record); and the vector alone "
        "(no view, no verification). Beyond featurize: capture → DOM less the device's "
        "featurize time. Confirmed announced: capture until a Redis subscriber has the "
        "confirmed record. Worker time: the mean of the worker's own stages of a message "
        "(decode and search; in stage two decode, focus, search and verify), wall clock on "
        "a machine the device shares. The stage table above is the every-view-confirmed run.",
        "",
        "| run | bytes / message (mean) | first answer in the DOM p50 / p99 ms (beyond "
        "featurize) | confirmed in the DOM p50 / p99 ms | confirmed announced p50 / p99 ms | "
        "records confirmed | worker time per message, ms (stage one / two) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode, (records, featurize_ms, seen, arrivals, _, _, sizes, stats) in runs.items():
        firsts = _dom_ms(records, seen, featurize_ms, Stage.FIRST)
        confirmed = _dom_ms(records, seen, None, Stage.CONFIRMED)
        if mode == BEFORE:  # the answer came once verified
            firsts = _dom_ms(records, seen, featurize_ms, Stage.CONFIRMED)
        announced = [record for record, _ in arrivals.values()]
        stage_one = [
            r.stages_ms["search"] + r.stages_ms["decode"]
            for r in announced
            if r.stage is Stage.FIRST
        ]
        stage_two = [
            sum(r.stages_ms.get(k, 0.0) for k in ("decode", "focus", "search", "verify"))
            for r in announced
            if r.stage is Stage.CONFIRMED
        ]
        confirmed_announced = [
            (at - record.captured_at) * 1000
            for (_, stage), (record, at) in arrivals.items()
            if stage is Stage.CONFIRMED
        ]
        lines.append(
            f"| {mode} | {np.mean(sizes):,.0f} | {p50_p99(firsts)} | {p50_p99(confirmed)} "
            f"| {p50_p99(confirmed_announced)} "
            f"| {stats.get('confirmed', 0)} of {len(records)} "
            f"| {np.mean(stage_one):.2f} / {np.mean(stage_two) if stage_two else 0:.1f} |"
        )
    return "\n".join(lines)


def _dom_ms(records, seen, featurize_ms, stage: Stage) -> list[float]:
    """Capture → the record's stage on screen, less the featurize time when given."""
    return [
        seen[key] - r.captured_at * 1000 - (featurize_ms[r.seq] if featurize_ms else 0.0)
        for r in records
        if (key := f"{r.seq}:{stage.value}") in seen and r.seq in (featurize_ms or {r.seq: 0})
    ]


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


def _play_device(
    settings: Settings, featurizer, frames, worker: Worker, views: str, wire: WireDtype | None
) -> tuple[dict[int, float], list[int]]:
    """Capture-time stamp → featurize → publish, at 15 fps like the demo camera; the focus
    view "on settle" (the device's rule), "every frame" or "never"; the vectors in ``wire``
    (None: the device's default). Returns each frame's featurize time and each message's
    size."""
    deadline = time.monotonic() + 10
    while not worker.subscribed.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    featurize_ms: dict[int, float] = {}
    sizes: list[int] = []
    device = DeviceSettings()
    settle = ViewSettle(
        frames=device.settle_frames,
        settle_cosine=device.settle_cosine,
        same_view_cosine=device.same_view_cosine,
    )
    publisher = FeaturePublisher(
        mqtt_url=str(settings.mqtt_url),
        device_id=DEVICE_ID,
        model_id=featurizer.model_id,
        provider=featurizer.provider,
        wire_dtype=wire or WireDtype.parse(device.wire_dtype),
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
            (vector,) = featurizer.embed([frame])
            owed = settle.update(vector)
            view = None
            if views == "every frame" or (views == "on settle" and owed):
                view = focus_view_jpeg(frame, VIEW_BYTES)
                settle.sent()
            featurize_ms[seq] = (time.perf_counter() - started) * 1000
            message = FeatureMessage(
                DEVICE_ID, seq, captured_at, featurizer.model_id, vector, view_jpeg=view
            )
            publisher.publish(message)
            sizes.append(len(encode(message, publisher.wire_dtype)))  # after: not on its path
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        time.sleep(1.5)  # the last records reach Redis and the page
    return featurize_ms, sizes


def _open_page(url: str):
    browser = headless_chromium(Path(tempfile.mkdtemp(prefix="edgelens-chrome-")))
    browser.get(url)
    browser.execute_script(OBSERVER_JS)
    return browser


class _Listener:
    """Keeps each announced record, first and confirmed, with when its announcement reached
    a Redis subscriber (what the web app sees)."""

    def __init__(self, url: str) -> None:
        self.arrivals: dict[tuple[int, Stage], tuple[MatchRecord, float]] = {}
        self._client = redis.Redis.from_url(url)
        self._pubsub = self._client.pubsub()
        self._pubsub.subscribe(**{matches_channel(DEVICE_ID): self._on_message})
        self._thread = self._pubsub.run_in_thread(sleep_time=0.01, daemon=True)

    def _on_message(self, message: dict) -> None:
        record = MatchRecord.from_json(message["data"])
        self.arrivals[(record.seq, record.stage)] = (record, time.time())

    def stop(self) -> None:
        self._thread.stop()
        self._thread.join(timeout=2)
        self._pubsub.close()
        self._client.close()


FIRST_STAGES = {
    "featurize (frame)": None,
    "publish (encode + MQTT)": None,
    "worker queue": "queue",
    "decode": "decode",
    "search": "search",
}
CONFIRM_STAGES = {
    "wait for stage two": "queue",
    "decode (the view)": "decode",
    "focus (the view's vectors)": "focus",
    "search": "search",
    "verify": "verify",
}


def _report(
    records,
    featurize_ms,
    seen,
    arrivals,
    frame: np.ndarray,
    vector: np.ndarray,
    *_,
    device_threads: int,
) -> str:
    per_stage: dict[str, list[float]] = {name: [] for name in FIRST_STAGES}
    per_stage |= {f"stage two: {name}": [] for name in CONFIRM_STAGES}
    per_stage |= {"capture → first record announced": [], "capture → confirmed announced": []}
    for (seq, stage), (record, at) in arrivals.items():
        st = record.stages_ms
        if seq not in featurize_ms:
            continue
        announced_ms = (at - record.captured_at) * 1000
        if stage is Stage.CONFIRMED:
            for name, key in CONFIRM_STAGES.items():
                per_stage[f"stage two: {name}"].append(st.get(key, 0.0))
            per_stage["capture → confirmed announced"].append(announced_ms)
            continue
        per_stage["featurize (frame)"].append(featurize_ms[seq])
        per_stage["publish (encode + MQTT)"].append(st["transit"] - featurize_ms[seq])
        for name, key in FIRST_STAGES.items():
            if key:
                per_stage[name].append(st[key])
        per_stage["capture → first record announced"].append(announced_ms)
    stage_rows = [
        f"| {name} | {p50_p99(values, digits=2, between=' | ')} |"
        for name, values in per_stage.items()
    ]
    dom = _dom_ms(records, seen, featurize_ms, Stage.FIRST)
    dom_total = _dom_ms(records, seen, None, Stage.FIRST)
    confirmed_total = _dom_ms(records, seen, None, Stage.CONFIRMED)
    pushed = sorted(r.captured_at + r.latency_ms / 1000 for r, _ in arrivals.values())
    rng = np.random.default_rng(0)
    phase = rng.uniform(0, 10)
    poll = [((np.floor((p - phase) / 10) + 1) * 10 + phase - p) * 1000 for p in pushed]

    message = FeatureMessage(
        DEVICE_ID, 1, time.time(), "efficientnet-lite0-fp32-be060c22de2f", vector
    )
    text = ",".join(f"{v:.6f}" for v in vector).encode()
    coded = {d.name.lower(): encode(message, d) for d in WireDtype}
    sizes = {name: len(payload) for name, payload in coded.items()}
    # Microseconds to code the vector on the device and to read it back on the worker.
    encode_us = {
        d.name.lower(): median_seconds(lambda d=d: encode(message, d), repeat=500) * 1e6
        for d in WireDtype
    }
    decode_us = {
        name: median_seconds(lambda p=payload: decode(p), repeat=500) * 1e6
        for name, payload in coded.items()
    }
    with_focus = len(encode(dataclasses.replace(message, focus_embedding=vector)))
    with_view = len(
        encode(dataclasses.replace(message, view_jpeg=focus_view_jpeg(frame, VIEW_BYTES)))
    )

    lines = [
        f"{len(records)} frames of the demo camera video at 15 fps, 640x480, FP32 featurizer "
        f"on the CPU (onnxruntime threads: the device's {device_threads}, the worker's "
        f"{Settings().worker.math_threads}; "
        "the two share this machine's cores), one worker, catalog of 20 items, loopback.",
        "",
        "Stages of the first answer: featurize (device), publish (encode, MQTT to the "
        "worker), queue, decode, search (worker); of stage two, for the frames that carried "
        "their settled view: the wait for the confirm thread, decoding the view, its "
        "vectors, search and verification; announced: capture until a Redis subscriber has "
        "the record (LPUSH/LTRIM/PUBLISH, or the in-place replacement).",
        "",
        "| stage (per frame) | p50 ms | p99 ms |",
        "| --- | ---: | ---: |",
        *stage_rows,
        "",
        "| capture → match visible in the page's DOM (headless Chromium, SSE) | p50 ms | p99 ms |",
        "| --- | ---: | ---: |",
        f"| first answer, total | {p50_p99(dom_total, between=' | ')} |",
        f"| first answer, beyond the featurize time | {p50_p99(dom, between=' | ')} |",
        f"| confirmed answer, total | {p50_p99(confirmed_total, between=' | ')} |",
        f"| baseline: a page polling every 10 s, same records | "
        f"{p50_p99(poll, digits=0, between=' | ')} |",
        "",
        f"First answers seen in the DOM: {len(dom_total)} of {len(records)} records; "
        f"confirmed: {len(confirmed_total)} (the page shows the newest record; frames "
        "overtaken between two paints are not stamped).",
        "",
        "| message for one 1280-d vector (the video's first frame) | bytes | vs text "
        "| encode us | decode us |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| seed systems' comma-separated text | {len(text)} | 1.00x | - | - |",
        *(
            f"| edgelens wire v1, {name} | {size} | {len(text) / size:.1f}x smaller "
            f"| {encode_us[name]:.1f} | {decode_us[name]:.1f} |"
            for name, size in sizes.items()
        ),
        f"| edgelens wire v2 (frame + focus box), float16 | {with_focus} "
        f"| {len(text) / with_focus:.1f}x smaller | - | - |",
        f"| edgelens wire v3 (frame + colour focus view, sent once the view settles), "
        f"float16 | {with_view} | {with_view / len(text):.1f}x larger | - | - |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
