"""The device loop on this machine: frames/s per precision with the time split by stage,
the messages similarity gating saves and the bytes they take on a still, a hand-held and a
panning camera.

Throughput: the real DeviceLoop (capture thread, mailbox, featurizer, smoothing, MQTT
publish to a real mosquitto) plays a 640x480 video that states 240 fps, so the source is
never the limit and each figure is what the loop itself sustains; gating is off so every
frame is published (the focus view once per settled view, as a device sends by default).
Baseline: the plain-pooling (GAP) FP32 model in the same rounds.
Gating: 15 fps videos played in real time with the default gate (cosine 0.95, keep-alive
1 s) and the device's defaults (the focus view once per view, when it has settled; the
box's vector is the worker's), against the same loop with gating off (every frame sent)
in the same run; with it, the device's featurize cost per frame, the focus views coded
included, against the plain model's.
Bytes: every message as a subscriber receives it, for the default (views on settle) and
for the behaviour before it (settle_frames=0: a view with every published frame), each
with gating on and off, in the same run.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt

from benchmarks.common import common_arguments, publish
from edgelens.demo.servers import MosquittoServer
from edgelens.demo.video import render_camera_video
from edgelens.device.loop import DeviceLoop, DeviceStats
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import SAMPLE_PHOTOS, load_photo
from edgelens.samples.views import FRAME_SIZE
from edgelens.settings import DeviceSettings
from edgelens.wire.features import WireDtype, decode, encode
from edgelens.wire.names import features_topic

logger = logging.getLogger(__name__)

MODELS = (  # (label, pooling, precision); the first is the baseline
    ("baseline GAP FP32", "gap", "fp32"),
    ("edgelens FP32", "rgem", "fp32"),
    ("edgelens FP16", "rgem", "fp16"),
    ("edgelens INT8", "rgem", "int8"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300, help="frames per throughput run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gating-seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    photos = [load_photo(p.loader) for p in SAMPLE_PHOTOS[:5]]
    featurizers = {
        label: Featurizer.from_models_dir(
            args.models_dir, precision, pooling, providers=["cpu"], threads=args.threads
        )
        for label, pooling, precision in MODELS
    }
    with tempfile.TemporaryDirectory() as tmp, MosquittoServer() as broker:
        fast = render_camera_video(
            Path(tmp) / "fast.avi", photos, fps=240, seconds_per_item=args.frames / 240 / 5
        )
        runs: dict[str, list[tuple[float, DeviceStats]]] = {label: [] for label in featurizers}
        for _ in range(args.rounds):  # interleaved, so drift of the machine hits all alike
            for label, featurizer in featurizers.items():
                runs[label].append(_throughput(fast, featurizer, broker.url))
        videos = {
            "still (tripod, sensor noise only)": _still_video(
                Path(tmp) / "still.avi", photos[2], args.gating_seconds
            ),
            f"hand-held, a new item every {args.gating_seconds / 5:g} s": render_camera_video(
                Path(tmp) / "handheld.avi", photos, seconds_per_item=args.gating_seconds / 5
            ),
            "panning across a shelf": _panning_video(
                Path(tmp) / "pan.avi", photos, args.gating_seconds
            ),
        }
        product = featurizers["edgelens FP32"]
        gating = {
            name: {
                (view_on, gate): _played(video, product, broker, gate, view_on)
                for view_on in ("settle", "every")
                for gate in (True, False)
            }
            for name, video in videos.items()
        }
    body = _report(runs, gating, args)
    publish("device-loop", body, write=not args.no_write)


def _device(source: Path, **overrides: object) -> DeviceSettings:
    return DeviceSettings(device_id="bench-device", source=str(source), **overrides)


def _throughput(video: Path, featurizer: Featurizer, mqtt_url: str) -> tuple[float, DeviceStats]:
    """Frames/s between the first and the last featurized frame, and the loop's stats."""
    loop = DeviceLoop(
        device=_device(video, fps_cap=240, gating=False, focus=False),
        featurizer=featurizer,
        mqtt_url=mqtt_url,
    )
    first: list[float] = []

    def watch() -> None:
        while not loop.stats.featurized and not done.is_set():
            time.sleep(0.001)
        first.append(time.perf_counter())

    done = threading.Event()
    watcher = threading.Thread(target=watch)
    watcher.start()
    stats = loop.run()
    ended = time.perf_counter()
    done.set()
    watcher.join()
    return (stats.featurized - 1) / (ended - first[0]), stats


@dataclass(frozen=True)
class Played:
    """A video played in real time: the loop's stats and the messages' sizes as received."""

    stats: DeviceStats
    sizes: list[int]  # payload bytes of each message received
    int8_sizes: list[int]  # the same messages coded as int8 (the default before deflate)
    views: int  # received messages that carried a focus view
    seconds: float  # the video's length

    @property
    def mean_bytes(self) -> float:
        return statistics.fmean(self.sizes) if self.sizes else 0.0

    @property
    def bytes_per_s(self) -> float:
        return sum(self.sizes) / self.seconds

    @property
    def int8_mean_bytes(self) -> float:
        return statistics.fmean(self.int8_sizes) if self.int8_sizes else 0.0


def _played(
    video: Path, featurizer: Featurizer, broker: MosquittoServer, gating: bool, view_on: str
) -> Played:
    """One real-time run; ``view_on`` "settle" (the default) or "every" published frame."""
    settle = {} if view_on == "settle" else {"settle_frames": 0}
    device = _device(video, fps_cap=15, gating=gating, **settle)
    received: list[bytes] = []
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda client, userdata, message: received.append(message.payload)
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.subscribe(features_topic(device.device_id), qos=0)
        if not subscribed.wait(5):
            raise RuntimeError("the bench's subscriber could not subscribe")
        stats = DeviceLoop(device=device, featurizer=featurizer, mqtt_url=broker.url).run()
        deadline = time.monotonic() + 5
        while len(received) < stats.published and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        client.disconnect()
        client.loop_stop()
    if len(received) != stats.published:
        logger.warning("%d of %d messages received", len(received), stats.published)
    reader = cv2.VideoCapture(str(video))
    seconds = reader.get(cv2.CAP_PROP_FRAME_COUNT) / reader.get(cv2.CAP_PROP_FPS)
    reader.release()
    messages = [decode(payload) for payload in received]
    views = sum(message.view_jpeg is not None for message in messages)
    int8_sizes = [len(encode(message, WireDtype.INT8)) for message in messages]
    return Played(stats, [len(payload) for payload in received], int8_sizes, views, seconds)


def _still_video(path: Path, photo: np.ndarray, seconds: float) -> Path:
    """A camera on a tripod: one scene, with per-frame sensor noise and flicker."""
    rng = np.random.default_rng(3)
    scene = cv2.resize(photo, FRAME_SIZE)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, FRAME_SIZE)
    for _ in range(round(15 * seconds)):
        noise = rng.normal(0, 3, scene.shape)
        writer.write(np.clip(scene + noise + rng.normal(0, 2), 0, 255).astype(np.uint8))
    writer.release()
    return path


def _panning_video(path: Path, photos: list[np.ndarray], seconds: float) -> Path:
    """A camera sweeping steadily along a shelf of the photos, side by side."""
    width, height = FRAME_SIZE
    shelf = np.hstack([cv2.resize(p, (width, height)) for p in photos])
    frames = round(15 * seconds)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, FRAME_SIZE)
    for i in range(frames):
        x = round(i * (shelf.shape[1] - width) / max(1, frames - 1))
        writer.write(np.ascontiguousarray(shelf[:, x : x + width]))
    writer.release()
    return path


def _report(runs, gating, args) -> str:
    lines = [
        "## Device loop on this machine",
        "",
        f"Throughput: the DeviceLoop (capture thread, featurizer, smoothing, MQTT to a real "
        f"mosquitto) on a {FRAME_SIZE[0]}x{FRAME_SIZE[1]} MJPG video of {args.frames} frames "
        f"that states 240 fps, gating off (every frame published, the focus view once per "
        f"settled view), CPU provider "
        f"with {args.threads} threads; median "
        f"of {args.rounds} interleaved rounds. Stage times are means per featurized frame; "
        "decode runs in the capture thread, beside the other three. Dropped = frames the "
        "source delivered faster than the loop took them (the loop keeps the newest).",
        "",
        "| model | frames/s | vs baseline | decode ms | preprocess ms | featurize ms "
        "| publish ms | dropped |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = statistics.median(fps for fps, _ in next(iter(runs.values())))
    for label, results in runs.items():
        fps = statistics.median(f for f, _ in results)
        stats = [s for _, s in results]

        def mean(field: str, stats=stats) -> float:
            return statistics.median(getattr(s, field) for s in stats)

        dropped = statistics.median(s.dropped / max(1, s.captured) for s in stats)
        lines.append(
            f"| {label} | {fps:.1f} | {fps / base:.2f}x | {mean('decode_ms_mean'):.2f} "
            f"| {mean('preprocess_ms_mean'):.2f} | {mean('featurize_ms_mean'):.2f} "
            f"| {mean('publish_ms_mean'):.2f} | {dropped:.0%} |"
        )
    plain_ms = statistics.median(
        s.preprocess_ms_mean + s.featurize_ms_mean for _, s in next(iter(runs.values()))
    )
    lines += [
        "",
        f"Gating: {args.gating_seconds:.0f} s of each 15 fps video played in real time with the "
        "edgelens FP32 model and the device's defaults; the gate publishes when the cosine to the "
        "last published vector drops below 0.95 or 1 s has passed, and the frame on which a view "
        "settles (3 frames in a row within cosine 0.95 of the first of them) goes out with its "
        "focus view even if the gate would suppress it (settled). Baseline: the same loop "
        "with gating off. Featurize per frame = preprocessing and the model, mean per frame, "
        "plus the focus views coded (one per settled view) spread over all frames, against "
        f"the plain model's {plain_ms:.2f} ms per frame, preprocessing included (throughput "
        "table).",
        "",
        "| video | frames featurized | messages, gating off | messages, gating on "
        "| of which keep-alive | of which settled | held as blur | saved "
        "| featurize per frame, ms | vs plain model |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, runs_of in gating.items():
        on, off = runs_of["settle", True].stats, runs_of["settle", False].stats
        saved = 1 - on.published / off.published if off.published else 0.0
        per_frame = (
            on.preprocess_ms_mean
            + on.featurize_ms_mean
            + on.focus_ms_mean * on.views_sent / max(1, on.featurized)
        )
        lines.append(
            f"| {name} | {on.featurized} | {off.published} | {on.published} "
            f"| {on.keepalives} | {on.settled} | {on.held_blurred} | {saved:.0%} | {per_frame:.2f} "
            f"| {per_frame / plain_ms:.2f}x |"
        )
    vector_only = min(size for runs_of in gating.values() for size in runs_of["settle", True].sizes)
    lines += [
        "",
        "Held as blur: frames the smoother held back as blurred glitches (not published, so "
        "no view of them can settle). Bytes: every message's payload as a subscriber received "
        f"it ({DeviceSettings().wire_dtype} vectors, the default: {vector_only:,} bytes for "
        "the vector alone; the focus view is the box's colour JPEG); as int8 = the same "
        "messages with their vectors coded as int8, the default before. Views on settle = "
        "the default: the focus view once per view, when it has settled, every other message "
        "the vector alone; a view with every publish = the behaviour before (settle_frames=0), "
        "in the same run. Views = messages that carried one.",
        "",
        "| video | gating | messages | views | mean bytes per message | as int8 | bytes/s "
        "| a view with every publish: views | mean bytes per message | bytes/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, runs_of in gating.items():
        for gate in (True, False):
            new, old = runs_of["settle", gate], runs_of["every", gate]
            lines.append(
                f"| {name} | {'on' if gate else 'off'} | {len(new.sizes)} | {new.views} "
                f"| {new.mean_bytes:,.0f} | {new.int8_mean_bytes:,.0f} | {new.bytes_per_s:,.0f} "
                f"| {old.views} "
                f"| {old.mean_bytes:,.0f} | {old.bytes_per_s:,.0f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
