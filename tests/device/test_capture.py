"""The capture thread against sources that fail, recover and outrun the consumer."""

import logging
import time

import numpy as np

from edgelens.device.capture import Backoff, FrameCapture
from edgelens.device.frames import LatestFrameMailbox
from edgelens.errors import SourceError


class CountingCamera:
    """A live source (it paces itself) that yields ``frames`` images, then fails or ends."""

    def __init__(self, frames: int, *, then_fail: bool) -> None:
        self.left = frames
        self.then_fail = then_fail
        self.interval_s = None

    def read(self) -> np.ndarray | None:
        if self.left == 0:
            if self.then_fail:
                raise SourceError("no frame")
            return None
        self.left -= 1
        return np.full((8, 8, 3), self.left % 256, dtype=np.uint8)

    def close(self) -> None:
        pass


def _drain(capture: FrameCapture, *, pause_s: float = 0.0) -> list[int]:
    seqs = []
    while not capture.mailbox.finished:
        frame = capture.mailbox.get(timeout=5)
        if frame is not None:
            seqs.append(frame.seq)
            time.sleep(pause_s)
    return seqs


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = Backoff(initial_s=0.5, max_s=3.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_lost_source_is_reopened_with_backoff_and_says_so(caplog):
    """A camera that drops out after 3 frames and fails to open twice, then works again."""
    attempts = []

    def open_camera() -> CountingCamera:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            return CountingCamera(3, then_fail=True)
        if len(attempts) <= 3:
            raise SourceError("device busy")
        return CountingCamera(3, then_fail=False)

    caplog.set_level(logging.INFO, logger="edgelens.device")
    capture = FrameCapture(
        open_camera,
        LatestFrameMailbox(),
        name="usb-cam",
        loop=False,
        backoff=Backoff(initial_s=0.05, max_s=0.1),
    )
    capture.start()
    seqs = _drain(capture)
    capture.join(5)
    assert capture.error is None
    assert capture.failures == 3  # one lost read, two failed opens
    assert capture.captured == 6
    assert seqs[-1] == 5 and seqs == sorted(seqs)
    waits = np.diff(attempts)
    assert waits[1] >= waits[0] >= 0.05  # 0.05 s, then doubled (to the 0.1 s cap)
    log = caplog.text
    assert "lost usb-cam (no frame)" in log
    assert "cannot open usb-cam (device busy); retrying in" in log
    assert "usb-cam reopened after 3 failure(s)" in log


def test_stop_ends_the_retrying_at_once():
    def never_opens() -> CountingCamera:
        raise SourceError("unplugged")

    capture = FrameCapture(
        never_opens,
        LatestFrameMailbox(),
        name="gone",
        loop=False,
        backoff=Backoff(initial_s=30, max_s=30),
    )
    capture.start()
    while capture.failures == 0:
        time.sleep(0.01)
    capture.stop.set()
    capture.join(5)
    assert capture.mailbox.finished and capture.captured == 0


def test_camera_faster_than_the_consumer_drops_stale_frames():
    capture = FrameCapture(
        lambda: CountingCamera(300, then_fail=False),
        LatestFrameMailbox(),
        name="fast-cam",
        loop=False,
        backoff=Backoff(initial_s=0.1, max_s=0.1),
    )
    capture.start()
    seqs = _drain(capture, pause_s=0.01)
    capture.join(5)
    assert seqs[-1] == 299  # the newest frame always arrives
    assert capture.mailbox.dropped > 0
    assert len(seqs) + capture.mailbox.dropped == capture.captured == 300


def test_an_unexpected_error_is_kept_for_the_consumer():
    class BrokenCamera(CountingCamera):
        def read(self) -> np.ndarray:
            return np.zeros((8, 8), dtype=np.uint8)  # not a BGR frame

    capture = FrameCapture(
        lambda: BrokenCamera(1, then_fail=False),
        LatestFrameMailbox(),
        name="broken",
        loop=False,
        backoff=Backoff(initial_s=0.1, max_s=0.1),
    )
    capture.start()
    assert _drain(capture) == []
    capture.join(5)
    assert isinstance(capture.error, ValueError) and "HxWx3" in str(capture.error)


def test_a_file_that_fails_is_not_retried():
    """Without ``retry`` (files, folders) a failure ends the capture and is kept."""

    def missing() -> CountingCamera:
        raise SourceError("no such file: missing.mp4")

    capture = FrameCapture(
        missing,
        LatestFrameMailbox(),
        name="missing.mp4",
        loop=True,
        backoff=Backoff(initial_s=30, max_s=30),
        retry=False,
    )
    capture.start()
    assert _drain(capture) == []
    capture.join(5)
    assert isinstance(capture.error, SourceError) and "missing.mp4" in str(capture.error)
    assert capture.failures == 0 and capture.source_error is None


def test_a_camera_being_retried_says_so_until_a_frame_comes():
    seen: list[str | None] = []  # what the capture said at each attempt to open

    def open_camera() -> CountingCamera:
        seen.append(capture.source_error)
        if len(seen) <= 2:
            raise SourceError("cannot open 0")
        return CountingCamera(2, then_fail=False)

    capture = FrameCapture(
        open_camera,
        LatestFrameMailbox(),
        name="0",
        loop=False,
        backoff=Backoff(initial_s=0.01, max_s=0.01),
    )
    capture.start()
    assert _drain(capture)[-1] == 1  # the newest frame (the first may have been replaced)
    capture.join(5)
    assert capture.captured == 2
    assert seen == [None, "can't open 0: retrying", "can't open 0: retrying"]
    assert capture.source_error is None and capture.failures == 2


class OneImagePass(CountingCamera):
    """A recorded one-image folder: one frame per pass, paced as fast as it goes."""

    def __init__(self) -> None:
        super().__init__(1, then_fail=False)
        self.interval_s = 0.001


def test_a_looping_one_image_source_logs_once_not_every_pass(caplog):
    caplog.set_level(logging.INFO, logger="edgelens.device")
    capture = FrameCapture(
        OneImagePass,
        LatestFrameMailbox(),
        name="one-image",
        loop=True,
        backoff=Backoff(initial_s=0.1, max_s=0.1),
        retry=False,
    )
    capture.start()
    while capture.captured < 50:  # 50 passes
        capture.mailbox.get(timeout=5)
    capture.stop.set()
    capture.join(5)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert lines == [
        "one-image opened (looping)",
        f"capture of one-image stopped after {capture.captured} frame(s)",
    ]
