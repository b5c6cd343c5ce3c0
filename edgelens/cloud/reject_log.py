"""Rate-limited warnings for refused messages.

A misconfigured or hostile device can send thousands of bad messages a second; one
log line each would flood the journal and slow the worker down. Every refusal is
still counted (the metrics carry the exact numbers); the log gets the first one of
each reason at once and then one line per reason and interval, with how many were
refused since.
"""

from __future__ import annotations

import logging
import threading
import time


class RejectLog:
    def __init__(self, logger: logging.Logger, *, interval_s: float = 10.0) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._next_at: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, reason: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next_at.get(reason, 0.0):
                self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
                return
            self._next_at[reason] = now + self._interval_s
            since = self._suppressed.pop(reason, 0)
        if since:
            message += f" (and {since} more {reason} since the last such line)"
        self._logger.warning(message, *args)
