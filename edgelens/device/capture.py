"""The capture stage: one thread reads the source into a latest-frame mailbox."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from edgelens.device.frames import Frame, LatestFrameMailbox
from edgelens.device.sources import FrameSource
from edgelens.errors import SourceError

logger = logging.getLogger(__name__)


class Backoff:
    """Exponential waits: ``initial_s``, doubled after each failure, capped at ``max_s``."""

    def __init__(self, *, initial_s: float, max_s: float) -> None:
        self.initial_s = initial_s
        self.max_s = max(max_s, initial_s)
        self._next_s = initial_s

    def next_delay(self) -> float:
        delay = self._next_s
        self._next_s = min(delay * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._next_s = self.initial_s


class FrameCapture:
    """Reads frames in its own thread so a slow model never holds the camera back.

    Every frame goes to a :class:`LatestFrameMailbox`. Recorded sources are paced
    at their :attr:`FrameSource.interval_s` and, with ``loop``, start over at
    their end (unlogged: a one-image folder ends many times a second); otherwise
    the mailbox is closed after their last frame. With ``retry`` (cameras and
    streams), a source that fails to open or to read is reopened with exponential
    backoff until :attr:`stop` is set, since unplugged cameras and dropped streams
    usually come back; without it (files, folders) the failure ends the capture and
    is kept in :attr:`error` for the consumer.
    """

    def __init__(
        self,
        open_source: Callable[[], FrameSource],
        mailbox: LatestFrameMailbox,
        *,
        name: str,
        loop: bool,
        backoff: Backoff,
        retry: bool = True,
    ) -> None:
        self.stop = threading.Event()
        self.mailbox = mailbox
        self.name = name
        self.captured = 0
        self.failures = 0  # failed opens and reads, each followed by a backoff wait
        # While a retried source is down, what the status says of it; None while frames flow.
        self.source_error: str | None = None
        self.error: Exception | None = None  # what ended the thread, for the consumer
        self._open_source = open_source
        self._loop = loop
        self._backoff = backoff
        self._retry = retry
        self._opened = False  # at least once: later opens of a looping source go unsaid
        self._due: float | None = None  # monotonic time the next recorded frame is due
        self._thread = threading.Thread(target=self._run, name="edgelens-capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the thread; a camera read blocked in the driver may outlast ``timeout``."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("capture of %s did not stop within %.1f s", self.name, timeout)

    def _run(self) -> None:
        try:
            self._capture()
        except SourceError as exc:  # a file or folder that cannot play: the consumer says so
            self.error = exc
        except Exception as exc:  # handed to the consumer, which re-raises it
            self.error = exc
            logger.exception("capture of %s failed", self.name)
        finally:
            self.mailbox.close()
            logger.info("capture of %s stopped after %d frame(s)", self.name, self.captured)

    def _capture(self) -> None:
        source: FrameSource | None = None
        try:
            while not self.stop.is_set():
                if source is None:
                    source = self._open()
                    continue
                started = time.perf_counter()
                try:
                    image = source.read()
                except SourceError as exc:
                    source.close()
                    source = None
                    self._wait_after_failure("lost", exc)
                    continue
                if image is None:
                    source.close()
                    source = None
                    if not self._loop:
                        logger.info("%s ended", self.name)
                        return
                    logger.debug("%s ended; looping", self.name)
                    continue
                self._deliver(image, source.interval_s, (time.perf_counter() - started) * 1000)
        finally:
            if source is not None:
                source.close()

    def _open(self) -> FrameSource | None:
        """Open the source, waiting with backoff after each failure; None once stopped."""
        while not self.stop.is_set():
            try:
                source = self._open_source()
            except SourceError as exc:
                self._wait_after_failure("cannot open", exc)
                continue
            if self.source_error is not None:
                logger.info("%s reopened after %d failure(s)", self.name, self.failures)
            elif not self._opened:
                logger.info("%s opened%s", self.name, " (looping)" if self._loop else "")
            else:
                logger.debug("%s reopened", self.name)
            self._opened = True
            return source
        return None

    def _wait_after_failure(self, what: str, exc: SourceError) -> None:
        """Retry a camera or stream after a backoff wait; a file or folder fails for good."""
        if not self._retry:
            raise exc
        # In plain words for the dashboard ("can't open 0: retrying"); the log line has why.
        said = "can't open" if what == "cannot open" else what
        self.source_error = f"{said} {self.name}: retrying"
        self.failures += 1
        delay = self._backoff.next_delay()
        logger.warning("%s %s (%s); retrying in %.1f s", what, self.name, exc, delay)
        self.stop.wait(delay)

    def _deliver(self, image: np.ndarray, interval_s: float | None, decode_ms: float) -> None:
        if interval_s is not None:
            self._wait_for_turn(interval_s)
            if self.stop.is_set():
                return
        self.mailbox.put(
            Frame(image, seq=self.captured, captured_at=time.time(), decode_ms=decode_ms)
        )
        self.captured += 1
        self.source_error = None
        self._backoff.reset()  # only a delivered frame proves the source works again

    def _wait_for_turn(self, interval_s: float) -> None:
        """Play a recorded source at its rate; after a stall, carry on without a burst."""
        now = time.monotonic()
        if self._due is None or self._due < now - interval_s:
            self._due = now
        self.stop.wait(max(0.0, self._due - now))
        self._due += interval_s
