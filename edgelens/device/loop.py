"""The device loop: capture → latest frame → featurizer → MQTT.

Each published frame carries its (smoothed) vector; the focus view goes with the
frame on which the view settled, once per view (:mod:`edgelens.device.settle`), or with
every published frame when ``device.settle_frames`` is 0.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelens.device.capture import Backoff, FrameCapture
from edgelens.device.frames import Frame, LatestFrameMailbox
from edgelens.device.gating import GateDecision, PublishGate
from edgelens.device.publisher import FeaturePublisher, Listener
from edgelens.device.settle import ViewSettle
from edgelens.device.smoothing import TemporalSmoother, frame_sharpness
from edgelens.device.sources import check_source, open_source, parse_source
from edgelens.device.timing import RateMeter, StageTimes
from edgelens.errors import ImageDecodeError
from edgelens.featurizer.focus import focus_crop, focus_view_jpeg
from edgelens.featurizer.runtime import Featurizer
from edgelens.settings import DeviceSettings, MqttTlsSettings, redact_urls
from edgelens.wire.features import FeatureMessage, WireDtype

logger = logging.getLogger(__name__)

# How long a starting device waits for the broker before it captures anyway.
BROKER_WAIT_S = 5.0
# How often the loop looks at its stop event while no frame arrives.
POLL_S = 0.1
# How long a stopping loop waits for the capture thread (a camera read may block longer).
CAPTURE_JOIN_S = 5.0
# The most of a source error a status carries (its "camera" line).
CAMERA_CHARS = 200
# What a warm-up inference runs on: a black image of the model's usual input size.
WARM_UP_IMAGE = np.zeros((224, 224, 3), dtype=np.uint8)


def warm_up(featurizer: Featurizer) -> float:
    """One inference, so the first frames do not wait on lazy initialisation (TensorRT
    builds its engine on the first run); returns the ms it took."""
    started = time.perf_counter()
    featurizer.embed([WARM_UP_IMAGE])
    return (time.perf_counter() - started) * 1000


@dataclass(frozen=True)
class DeviceStats:
    """A snapshot of one loop's counters and timings (means in ms per frame)."""

    captured: int  # frames read from the source
    dropped: int  # replaced before the featurizer took them (slow model or FPS cap)
    featurized: int
    published: int  # handed to the broker
    unsent: int  # featurized while the broker was unreachable, then dropped
    suppressed: int  # same view as the last publish and no keep-alive due: not sent
    keepalives: int  # same view, sent because the keep-alive interval had passed
    settled: int  # same view, sent (with its focus view) only because it had just settled
    views_sent: int  # messages that carried a focus view: about one per settled view
    source_failures: int  # failed opens and reads of the source
    source_error: str | None  # while a camera or stream is retried, what is wrong; else None
    view_changes: int  # frames unlike every recent one, published without averaging
    held_blurred: int  # blurred frames unlike the recent ones, not published
    fps: float  # frames featurized per second, over the last few seconds
    featurize_ms_last: float
    featurize_ms_mean: float  # the model alone
    decode_ms_mean: float  # the source's read, in the capture thread
    preprocess_ms_mean: float
    publish_ms_mean: float  # smoothing, gating, encoding and the hand-over to MQTT
    focus_ms_mean: float  # the focus box (its view; its pass with device.focus), per one made

    def health(self) -> dict[str, float | int | str]:
        """The figures a retained device status carries to the dashboard; while the source
        is retried, a "camera" line saying so (a stream URL's password left out)."""
        health: dict[str, float | int | str] = {
            "fps": round(self.fps, 2),
            "featurize_ms": round(self.featurize_ms_mean, 2),
            "preprocess_ms": round(self.preprocess_ms_mean, 2),
            "decode_ms": round(self.decode_ms_mean, 2),
            "publish_ms": round(self.publish_ms_mean, 2),
            "focus_ms": round(self.focus_ms_mean, 2),
            "captured": self.captured,
            "dropped": self.dropped,
            "published": self.published,
            "suppressed": self.suppressed,
            "views_sent": self.views_sent,
            "unsent": self.unsent,
        }
        if self.source_error:
            health["camera"] = redact_urls(self.source_error)[:CAMERA_CHARS]
        return health


class DeviceLoop:
    """Runs one device: frames from its source, vectors to ``edgelens/<device_id>/features``.

    :meth:`run` blocks until :attr:`stop` is set or, without ``loop``, a recorded
    source has ended and its last frame is published. Capture runs in its own
    thread behind a one-frame mailbox; featurizing and publishing run in the
    caller's thread, at most ``fps_cap`` frames a second. A file or folder that
    gives no frame fails at construction (:class:`SourceError`); a camera or stream
    is retried, and the status says why while it is down.

    Another model can take over while it runs (:meth:`swap_featurizer`, from any thread):
    the loop switches between two frames, and the status names the new model.
    """

    def __init__(
        self,
        *,
        device: DeviceSettings,
        featurizer: Featurizer,
        mqtt_url: str,
        mqtt_tls: MqttTlsSettings | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.device = device
        self.stop = stop if stop is not None else threading.Event()
        self._featurizer = featurizer
        self._swap_lock = threading.Lock()
        self._next_featurizer: Featurizer | None = None  # to run from the next frame on
        # A bad URI, a missing file or one that is no video fails here, before anything starts.
        spec = parse_source(device.source)
        unreadable: set[Path] = set()  # a looping folder's broken images, said once
        check_source(spec, fps_cap=device.fps_cap, unreadable=unreadable)
        self._mailbox = LatestFrameMailbox()
        self._capture = FrameCapture(
            functools.partial(open_source, spec, fps_cap=device.fps_cap, unreadable=unreadable),
            self._mailbox,
            name=spec.uri,
            loop=device.loop,
            backoff=Backoff(initial_s=device.reconnect_initial_s, max_s=device.reconnect_max_s),
            retry=not spec.recorded,
        )
        # Set once the first frame is featurized: the source works (the demo's banner waits).
        self.first_frame = threading.Event()
        self._publisher = FeaturePublisher(
            mqtt_url=mqtt_url,
            device_id=device.device_id,
            model_id=featurizer.model_id,
            provider=featurizer.provider,
            wire_dtype=WireDtype.parse(device.wire_dtype),
            reconnect_initial_s=device.reconnect_initial_s,
            reconnect_max_s=device.reconnect_max_s,
            tls=mqtt_tls,
            sends_views=device.send_view,
        )
        self._smoother, self._gate, self._settle = self._view_state()
        self._times = StageTimes()
        self._last_focus: np.ndarray | None = None  # re-sent while the gate sees the same view
        self._views_sent = 0
        self._rate = RateMeter()
        self._featurized = 0
        self._status_due = 0.0

    @property
    def model_id(self) -> str:
        """The model this loop runs, or, while a swap waits for the next frame, the one it
        is about to run."""
        with self._swap_lock:
            return (self._next_featurizer or self._featurizer).model_id

    def swap_featurizer(self, featurizer: Featurizer) -> None:
        """Run ``featurizer`` from the next frame on instead of the current model, without
        a restart; safe to call from any thread, and it returns at once. Give it warmed up
        (:func:`warm_up`): the loop does not wait for it. A second call before the swap
        replaces the first. Once swapped, the messages and the status carry its model id;
        the smoothing, gating and settling start afresh (two models' vectors are never
        compared) and the counters go on."""
        with self._swap_lock:
            self._next_featurizer = featurizer

    def set_model_problem(self, problem: str | None) -> None:
        """Why the device does not run the model it was offered, in plain words, or None
        once it does; the status carries it as ``model_problem``. Safe from any thread."""
        self._publisher.set_model_problem(problem)

    def listen(self, topics: Sequence[str], listener: Listener) -> None:
        """Hear these topics on the device's own MQTT connection (QoS 1, subscribed again
        on every reconnect); call before :meth:`run`. ``listener`` runs in the network
        thread and must return at once."""
        self._publisher.listen(topics, listener)

    @property
    def stats(self) -> DeviceStats:
        """The counters now; safe to read from any thread while the loop runs."""
        times = self._times
        return DeviceStats(
            captured=self._capture.captured,
            dropped=self._mailbox.dropped,
            featurized=self._featurized,
            published=self._publisher.published,
            unsent=self._publisher.unsent,
            suppressed=self._gate.suppressed,
            keepalives=self._gate.keepalives,
            settled=self._gate.settled,
            views_sent=self._views_sent,
            source_failures=self._capture.failures,
            source_error=self._capture.source_error,
            view_changes=self._smoother.view_changes,
            held_blurred=self._smoother.held_blurred,
            fps=self._rate.rate(),
            featurize_ms_last=times.last_ms("featurize"),
            featurize_ms_mean=times.mean_ms("featurize"),
            decode_ms_mean=times.mean_ms("decode"),
            preprocess_ms_mean=times.mean_ms("preprocess"),
            publish_ms_mean=times.mean_ms("publish"),
            focus_ms_mean=times.mean_ms("focus"),
        )

    def run(self) -> DeviceStats:
        """Capture, featurize and publish until stopped or a non-looping recording ends (once)."""
        logger.info(
            "device %s: %s → %s with %s on %s, at most %.1f fps",
            self.device.device_id,
            self.device.source,
            self._publisher.broker,
            self._featurizer.model_id,
            self._featurizer.provider,
            self.device.fps_cap,
        )
        self._warm_up()
        with self._publisher:
            if not self._publisher.wait_connected(BROKER_WAIT_S):
                logger.warning(
                    "broker %s not reachable yet; capturing anyway", self._publisher.broker
                )
            self._capture.start()
            try:
                self._process_frames()
            finally:
                self._capture.stop.set()
                self._capture.join(CAPTURE_JOIN_S)
                # The "offline" status then carries the final figures.
                self._publisher.update_health(self.stats.health(), publish=False)
        if self._capture.error is not None:
            raise self._capture.error
        stats = self.stats
        logger.info("device %s stopped: %s", self.device.device_id, stats)
        return stats

    def _warm_up(self) -> None:
        """One inference before capture starts (:func:`warm_up`)."""
        logger.info("featurizer warmed up in %.0f ms", warm_up(self._featurizer))

    def _view_state(self) -> tuple[TemporalSmoother, PublishGate, ViewSettle]:
        """A new smoother, gate and settle rule, knowing no vector yet."""
        device = self.device
        smoother = TemporalSmoother(
            window=device.smoothing_window, same_view_cosine=device.same_view_cosine
        )
        gate = PublishGate(
            enabled=device.gating,
            min_change_cosine=device.gate_cosine,
            keepalive_s=device.keepalive_s,
        )
        settle = ViewSettle(
            frames=max(1, device.settle_frames),
            settle_cosine=device.settle_cosine,
            same_view_cosine=device.same_view_cosine,
        )
        return smoother, gate, settle

    def _swap_if_asked(self) -> None:
        """Between two frames: switch to the featurizer :meth:`swap_featurizer` left."""
        with self._swap_lock:
            featurizer, self._next_featurizer = self._next_featurizer, None
            if featurizer is None:
                return
            old, self._featurizer = self._featurizer, featurizer
        smoother, gate, settle = self._view_state()
        smoother.view_changes = self._smoother.view_changes
        smoother.held_blurred = self._smoother.held_blurred
        gate.counts = self._gate.counts
        settle.new_views = self._settle.new_views
        self._smoother, self._gate, self._settle = smoother, gate, settle
        self._last_focus = None
        self._publisher.set_model(featurizer.model_id, featurizer.provider)
        logger.info(
            "device %s switched from %s to %s on %s",
            self.device.device_id,
            old.model_id,
            featurizer.model_id,
            featurizer.provider,
        )

    def _process_frames(self) -> None:
        min_interval_s = 1.0 / self.device.fps_cap
        while not self.stop.is_set():
            self._swap_if_asked()
            frame = self._mailbox.get(timeout=POLL_S)
            if frame is None:
                if self._mailbox.finished:
                    return
                self._refresh_status()  # a camera being retried: the status says why
                continue
            started = time.monotonic()
            self._featurize_and_publish(frame)
            # The FPS cap: frames arriving meanwhile replace each other in the mailbox.
            self.stop.wait(max(0.0, min_interval_s - (time.monotonic() - started)))

    def _featurize_and_publish(self, frame: Frame) -> None:
        times = self._times
        times.add("decode", frame.decode_ms)
        started = time.perf_counter()
        batch = self._featurizer.preprocess([frame.image_bgr])
        preprocessed = time.perf_counter()
        (embedding,) = self._featurizer.embed_batch(batch)
        featurized = time.perf_counter()
        times.add("preprocess", (preprocessed - started) * 1000)
        times.add("featurize", (featurized - preprocessed) * 1000)
        self._featurized += 1
        self.first_frame.set()
        self._rate.tick()
        focus_ms = self._publish(frame, embedding)
        times.add("publish", (time.perf_counter() - featurized) * 1000 - focus_ms)
        self._refresh_status()

    def _publish(self, frame: Frame, embedding: np.ndarray) -> float:
        """Publish the frame if the gate lets it through, or if its view has just settled;
        returns the ms its focus box took."""
        smoothed = self._smoother.update(embedding, frame_sharpness(frame.image_bgr))
        if smoothed is None:  # a blurred glitch: the screen keeps the last match
            return 0.0
        settled = self._view_owed(embedding)
        decision = self._gate.decide(smoothed, time.monotonic(), settled=settled)
        if not decision.publish:
            return 0.0
        with_view = self.device.send_view and (settled or self.device.settle_frames == 0)
        focus_embedding, jpeg, focus_ms = self._focus_views(frame, decision, with_view)
        sent = self._publisher.publish(
            FeatureMessage(
                device_id=self.device.device_id,
                seq=frame.seq,
                captured_at=frame.captured_at,
                model_id=self._featurizer.model_id,
                embedding=smoothed,
                focus_embedding=focus_embedding,
                view_jpeg=jpeg,
            )
        )
        # Unsent (broker away), the view stays owed and goes with a later frame.
        if sent and settled:
            self._settle.sent()
        if sent and jpeg is not None:
            self._views_sent += 1
        return focus_ms

    def _view_owed(self, embedding: np.ndarray) -> bool:
        """Whether this frame (its own vector) settles a view whose focus view has not
        gone out; never with ``send_view`` off or ``settle_frames`` 0 (no rule)."""
        if not self.device.send_view or self.device.settle_frames == 0:
            return False
        return self._settle.update(embedding)

    def _focus_views(
        self, frame: Frame, decision: GateDecision, with_view: bool
    ) -> tuple[np.ndarray | None, bytes | None, float]:
        """For a frame going out: with ``device.focus`` the focus box's vector (made for a
        new view, re-sent when the gate found the view unchanged: a keep-alive or a settled
        frame), with ``with_view`` its focus view; each None otherwise; and the ms they took."""
        same_view = decision in (GateDecision.KEEPALIVE, GateDecision.SETTLED)
        embedding = self._last_focus if same_view else None
        make_vector = self.device.focus and embedding is None
        if not (make_vector or with_view):
            return embedding, None, 0.0
        started = time.perf_counter()
        if make_vector:
            (embedding,) = self._featurizer.embed([focus_crop(frame.image_bgr)])
            self._last_focus = embedding
        jpeg = self._view_jpeg(frame) if with_view else None
        focus_ms = (time.perf_counter() - started) * 1000
        self._times.add("focus", focus_ms)
        return embedding, jpeg, focus_ms

    def _view_jpeg(self, frame: Frame) -> bytes | None:
        """The focus view of ``frame``, or None (said) if it cannot fit in a message: the
        vector still goes out."""
        try:
            return focus_view_jpeg(frame.image_bgr, self.device.view_bytes)
        except ImageDecodeError as exc:
            logger.warning("frame %d sent without its focus view: %s", frame.seq, exc)
            return None

    def _refresh_status(self) -> None:
        """Every ``status_interval_s``, put fresh health figures in the retained status."""
        now = time.monotonic()
        if now < self._status_due:
            return
        self._status_due = now + self.device.status_interval_s
        self._publisher.update_health(self.stats.health())
