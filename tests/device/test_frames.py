"""Frames are validated at birth; the mailbox keeps only the newest and counts the rest."""

import threading
import time

import numpy as np
import pytest

from edgelens.device.frames import Frame, LatestFrameMailbox


def _frame(seq: int) -> Frame:
    return Frame(np.zeros((24, 32, 3), dtype=np.uint8), seq=seq, captured_at=time.time())


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((24, 32), dtype=np.uint8),
        np.zeros((24, 32, 4), dtype=np.uint8),
        np.zeros((24, 32, 3), dtype=np.float32),
        np.zeros((0, 32, 3), dtype=np.uint8),
    ],
)
def test_frame_refuses_anything_but_hxwx3_uint8(image):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        Frame(image, seq=0, captured_at=0.0)


def test_frame_refuses_negative_seq_and_nan_time():
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="sequence"):
        Frame(image, seq=-1, captured_at=0.0)
    with pytest.raises(ValueError, match="finite"):
        Frame(image, seq=0, captured_at=float("nan"))


def test_mailbox_keeps_the_newest_and_counts_the_replaced():
    mailbox = LatestFrameMailbox()
    for seq in range(3):
        mailbox.put(_frame(seq))
    assert mailbox.dropped == 2
    assert mailbox.get(timeout=0).seq == 2
    assert mailbox.get(timeout=0.01) is None  # empty: times out
    assert not mailbox.finished


def test_closed_mailbox_hands_out_its_last_frame_then_finishes():
    mailbox = LatestFrameMailbox()
    mailbox.put(_frame(7))
    mailbox.close()
    assert not mailbox.finished
    assert mailbox.get().seq == 7
    assert mailbox.finished
    assert mailbox.get() is None  # returns at once, no timeout needed
    with pytest.raises(RuntimeError):
        mailbox.put(_frame(8))


def test_slow_consumer_sees_fresh_frames_and_every_frame_is_accounted_for():
    mailbox = LatestFrameMailbox()
    total = 200

    def produce() -> None:
        for seq in range(total):
            mailbox.put(_frame(seq))
            time.sleep(0.001)
        mailbox.close()

    producer = threading.Thread(target=produce)
    producer.start()
    received = []
    while not mailbox.finished:
        frame = mailbox.get(timeout=1)
        if frame is not None:
            received.append(frame.seq)
            time.sleep(0.02)  # a model much slower than the camera
    producer.join()
    assert received == sorted(received)
    assert received[-1] == total - 1  # the last frame is never lost
    assert mailbox.dropped > 0
    assert len(received) + mailbox.dropped == total
