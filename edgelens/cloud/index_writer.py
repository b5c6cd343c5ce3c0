"""Which worker writes a shared index: one writer for a Milvus collection that every worker queries.

Each worker follows the catalog's change log. For an index in the worker's own memory that
is right: every copy must change. A collection in a vector database is one copy shared by
all workers, so N followers would write every change N times (and race each other). Only
the holder of a Redis lease applies changes to it; the lease lapses ``ttl_s`` after its
holder stops renewing it (a crash, a lost network), and another worker takes over.

The change the shared collection reflects is kept in Redis beside the lease, so a new
holder continues where the last one stopped, including changes made while every worker
was down. The first fill of a new collection (minutes for a large catalog) is done under
the same lease (:func:`filling_alone`), so two workers starting together fill it once.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import LockError

from edgelens.errors import RedisUnavailableError, SearchError
from edgelens.wire.names import index_seq_key, index_writer_key

logger = logging.getLogger(__name__)


class IndexWriterLease:
    def __init__(self, client: redis.Redis, *, shared_index: str, ttl_s: float) -> None:
        self.shared_index = shared_index
        self.ttl_s = ttl_s
        self._client = client
        self._seq_key = index_seq_key(shared_index)
        # thread_local=False: the follower thread renews what the worker thread may release.
        self._lock = client.lock(
            index_writer_key(shared_index),
            timeout=ttl_s,
            blocking=False,
            thread_local=False,
        )
        self._token = uuid.uuid4().hex
        self.held = False

    def hold(self) -> bool:
        """Take the lease or renew it; whether this worker is now the writer."""
        try:
            if self.held:
                try:
                    self._lock.reacquire()
                except LockError:  # lapsed (this worker stalled past the TTL): take it anew
                    self.held = self._lock.acquire(token=self._token)
                    if not self.held:
                        logger.warning("lost the writer lease of %s", self.shared_index)
            else:
                self.held = self._lock.acquire(token=self._token)
                if self.held:
                    logger.info("this worker now writes the shared index %s", self.shared_index)
        except redis.RedisError as exc:
            self.held = False
            raise RedisUnavailableError(f"writer lease of {self.shared_index}: {exc}") from exc
        return self.held

    def applied_seq(self) -> int | None:
        """The catalog change the shared index reflects, or None if no writer recorded one."""
        try:
            value = self._client.get(self._seq_key)
        except redis.RedisError as exc:
            raise RedisUnavailableError(f"applied change of {self.shared_index}: {exc}") from exc
        return None if value is None else int(value)

    def record(self, seq: int) -> None:
        """Record that the shared index reflects change ``seq`` (only while the writer)."""
        try:
            self._client.set(self._seq_key, seq)
        except redis.RedisError as exc:
            raise RedisUnavailableError(f"applied change of {self.shared_index}: {exc}") from exc

    def release(self) -> None:
        """Hand the lease on at once, so a stopping worker's successor need not wait the TTL."""
        if not self.held:
            return
        self.held = False
        try:
            self._lock.release()
        except (LockError, redis.RedisError) as exc:  # lapsed already, or Redis is away
            logger.info("writer lease of %s not released: %s", self.shared_index, exc)


@contextmanager
def filling_alone(
    client: redis.Redis, shared_index: str, seq: int, *, ttl_s: float, stop: threading.Event
) -> Iterator[None]:
    """Hold the writer lease of ``shared_index`` while filling it to reflect catalog change
    ``seq``: wait while another worker holds it (it may be filling it), renew it every third
    of its TTL meanwhile, record ``seq`` once filled, and release it. SearchError if ``stop``
    is set while waiting."""
    lease = IndexWriterLease(client, shared_index=shared_index, ttl_s=ttl_s)
    if not lease.hold():
        logger.info("waiting for the worker that writes %s", shared_index)
        while not lease.hold():
            if stop.wait(ttl_s / 3):
                raise SearchError(f"stopped while waiting to fill {shared_index}")
    filled = threading.Event()

    def renew() -> None:
        while not filled.wait(ttl_s / 3):
            try:
                lease.hold()
            except RedisUnavailableError as exc:
                logger.warning("writer lease of %s not renewed: %s", shared_index, exc)

    renewer = threading.Thread(target=renew, name="index-fill-lease", daemon=True)
    renewer.start()
    try:
        yield
        lease.record(seq)
    finally:
        filled.set()
        renewer.join()
        lease.release()
