"""Every device's fair share of a worker, so one device (a bug or an attacker) cannot take
the service down for the others.

:class:`DeviceBudgets` refuses a device's messages beyond its token buckets (messages a
second and bytes a second, each with a burst); :class:`FairQueue` holds the frames waiting
for the match loop per device and hands them out round-robin, so a device's backlog delays
another device's frame by at most one of its own. Both are bounded whatever the device
ids: made-up ids cannot grow the worker's memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

# Devices whose buckets are remembered; the least recently seen is forgotten (and starts
# again with full buckets if it comes back).
DEVICES_TRACKED = 10_000

T = TypeVar("T")


@dataclass(frozen=True)
class Allowance:
    """``per_s`` tokens a second, at most ``burst`` saved up."""

    per_s: float
    burst: float


class _Buckets:
    __slots__ = ("at", "messages", "size")

    def __init__(self, messages: float, size: float, at: float) -> None:
        self.messages = messages
        self.size = size
        self.at = at


class DeviceBudgets:
    """A token bucket of messages and one of bytes per device; a message is admitted only
    when both hold enough, and then costs one message and its size."""

    def __init__(
        self,
        *,
        messages: Allowance,
        size: Allowance,
        devices: int = DEVICES_TRACKED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._messages = messages
        self._size = size
        self._devices = devices
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, _Buckets] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)

    def admit(self, device: str, size: int) -> bool:
        """Whether ``device`` may send a message of ``size`` bytes now (and charge it)."""
        now = self._clock()
        with self._lock:
            buckets = self._buckets.get(device)
            if buckets is None:
                buckets = _Buckets(self._messages.burst, self._size.burst, now)
                self._buckets[device] = buckets
                if len(self._buckets) > self._devices:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(device)
                elapsed = max(0.0, now - buckets.at)
                buckets.messages = min(
                    self._messages.burst, buckets.messages + elapsed * self._messages.per_s
                )
                buckets.size = min(self._size.burst, buckets.size + elapsed * self._size.per_s)
                buckets.at = now
            if buckets.messages < 1 or buckets.size < size:
                return False
            buckets.messages -= 1
            buckets.size -= size
            return True


class FairQueue(Generic[T]):
    """Items waiting per device, taken round-robin across devices: at most ``per_device``
    of one device (a newer one replaces its oldest: for live matching the newest frame
    wins) and ``capacity`` in all (then the oldest of the longest backlog goes)."""

    def __init__(self, *, capacity: int, per_device: int) -> None:
        self._capacity = capacity
        self._per_device = per_device
        self._ready = threading.Condition()
        self._waiting: OrderedDict[str, deque[T]] = OrderedDict()  # next device to serve first
        self._count = 0

    def __len__(self) -> int:
        with self._ready:
            return self._count

    def put(self, device: str, item: T) -> int:
        """Queue ``item`` as ``device``'s newest; returns how many waiting items it pushed out."""
        with self._ready:
            items = self._waiting.get(device)
            if items is None:
                items = self._waiting[device] = deque()
            items.append(item)
            self._count += 1
            dropped = 0
            if len(items) > self._per_device:
                items.popleft()
                dropped += 1
            elif self._count > self._capacity:
                longest = max(self._waiting, key=lambda d: len(self._waiting[d]))
                self._waiting[longest].popleft()
                if not self._waiting[longest]:
                    del self._waiting[longest]
                dropped += 1
            self._count -= dropped
            self._ready.notify()
            return dropped

    def take(self, timeout: float) -> T | None:
        """The next device's oldest item (that device then goes last), or None after
        ``timeout`` seconds with nothing waiting."""
        with self._ready:
            if not self._count:
                self._ready.wait(timeout)
            if not self._count:
                return None
            device, items = next(iter(self._waiting.items()))
            item = items.popleft()
            self._count -= 1
            if items:
                self._waiting.move_to_end(device)
            else:
                del self._waiting[device]
            return item
