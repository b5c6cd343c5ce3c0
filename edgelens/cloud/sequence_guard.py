"""Refuses replayed, out-of-order and future-dated feature messages, per device.

Each device stamps its messages with a capture time and a sequence number. A message
not newer than the last one accepted from that device (same stamp: a replay; older:
out of order, e.g. a retransmission overtaken by newer frames) would put a stale match
on the screen, so it is refused. The capture time orders messages across a device
restart, where the sequence number starts again at 0. A capture time far in the future
is refused too: accepted, it would make every genuine message after it look old.
"""

from __future__ import annotations

import threading
import time

from edgelens.errors import RejectedMessage
from edgelens.wire.features import FeatureMessage

# How far ahead of this worker's clock a device's clock may run (NTP-less devices drift).
MAX_CLOCK_AHEAD_S = 30.0
# Devices remembered at most; the oldest entry is forgotten beyond this (bounded memory).
MAX_DEVICES = 100_000


class SequenceGuard:
    def __init__(self, *, max_clock_ahead_s: float = MAX_CLOCK_AHEAD_S) -> None:
        self._max_ahead_s = max_clock_ahead_s
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def check(self, message: FeatureMessage, *, now: float | None = None) -> None:
        """Accept (and remember) the message, or raise :class:`RejectedMessage`."""
        now = time.time() if now is None else now
        if message.captured_at > now + self._max_ahead_s:
            raise RejectedMessage(
                "clock_ahead",
                f"captured {message.captured_at - now:.0f} s in the future of this worker "
                f"(device {message.device_id}: is its clock set?)",
            )
        stamp = (message.captured_at, message.seq)
        with self._lock:
            last = self._last.get(message.device_id)
            if last is not None and stamp <= last:
                reason = "replayed" if stamp == last else "out_of_order"
                raise RejectedMessage(
                    reason,
                    f"device {message.device_id} seq {message.seq} is not newer than "
                    f"seq {last[1]} already answered",
                )
            self._last.pop(message.device_id, None)
            self._last[message.device_id] = stamp  # newest last: dicts keep insertion order
            if len(self._last) > MAX_DEVICES:
                del self._last[next(iter(self._last))]
