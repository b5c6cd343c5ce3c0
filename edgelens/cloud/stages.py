"""What the worker's stages are built of, and what passes between them.

Every long-running stage is a few daemon threads (:class:`StageThreads`) that end at the
worker's stop event (or, for the push thread, at the end of its queue) and say so in
the log; each hands work on through a bounded queue, so no device can grow the worker's
memory. :class:`NewestPerKey` is the queue of stages where only the newest item of a
device matters (statuses, views to confirm).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from edgelens.wire.records import MatchRecord

# How long a stage waits for work before it looks at the stop event again.
POLL_S = 0.2
# How long stopping waits for each thread of a stage.
JOIN_S = 5.0

T = TypeVar("T")


@dataclass(frozen=True)
class Inbound:
    topic: str
    payload: bytes
    received_at: float  # wall clock, comparable with the device's captured_at


@dataclass(frozen=True)
class Outgoing:
    """A record to push, with the view its frame came with, and the frame's vectors as a
    message without it, when they are to be kept."""

    record: MatchRecord
    view_jpeg: bytes | None = None
    view_vectors: bytes | None = None


class StageThreads:
    """A stage's daemon threads: started together, and each joined for at most
    :data:`JOIN_S` at stop (one never started, as in a worker driven only through
    ``handle_message``, is skipped)."""

    def __init__(self, *threads: tuple[str, Callable[[], None]]) -> None:
        self._threads = [
            threading.Thread(target=target, name=name, daemon=True) for name, target in threads
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def join(self) -> None:
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=JOIN_S)


@dataclass(frozen=True)
class Outcomes:
    """The counter names of what :meth:`NewestPerKey.put` did with an item."""

    queued: str
    replaced: str  # the key's waiting item, no longer true, was replaced
    dropped: str  # the queue was full: the oldest waiting item went


class NewestPerKey(Generic[T]):
    """Items waiting for one thread, the newest per key: a newer item replaces its key's
    waiting one (no longer true) and goes last; at most ``capacity`` keys wait (then the
    oldest waiting item goes)."""

    def __init__(self, capacity: int, *, outcomes: Outcomes) -> None:
        self._capacity = capacity
        self._outcomes = outcomes
        self._ready = threading.Condition()
        self._waiting: OrderedDict[str, T] = OrderedDict()

    def __len__(self) -> int:
        with self._ready:
            return len(self._waiting)

    def put(self, key: str, item: T) -> str:
        """Queue ``item`` as ``key``'s newest; returns its outcome's counter name."""
        with self._ready:
            outcome = self._outcomes.queued
            if self._waiting.pop(key, None) is not None:
                outcome = self._outcomes.replaced
            elif len(self._waiting) >= self._capacity:
                self._waiting.popitem(last=False)
                outcome = self._outcomes.dropped
            self._waiting[key] = item
            self._ready.notify()
            return outcome

    def take(self, timeout: float) -> T | None:
        """The oldest waiting item, or None after ``timeout`` seconds with none waiting."""
        with self._ready:
            if not self._waiting:
                self._ready.wait(timeout)
            return self._waiting.popitem(last=False)[1] if self._waiting else None

    def take_all(self, timeout: float) -> list[T]:
        """Every waiting item, after at most ``timeout`` seconds of waiting for one."""
        with self._ready:
            if not self._waiting:
                self._ready.wait(timeout)
            taken = list(self._waiting.values())
            self._waiting.clear()
            return taken
