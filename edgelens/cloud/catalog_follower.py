"""Keeps a worker's index equal to the catalog, change by change, without a rebuild, and
its corrected views (:mod:`edgelens.cloud.recall`) equal to the catalog's corrections.

The catalog's change log (item id, upsert/remove, in commit order) is the source of
truth; a notification wakes the follower at once (PostgreSQL's own NOTIFY for a catalog
there, a Redis message on the catalog channel for a SQLite one), and a slow poll covers
a missed one. Each round applies only the items that changed: their
current vectors of this worker's model are upserted, removed items (and items with
no vectors of this model) leave the index. A shared index (one Milvus collection for
all workers) is written only by the holder of its writer lease
(:mod:`edgelens.cloud.index_writer`); the other workers' followers just watch.
"""

from __future__ import annotations

import logging
import threading

import redis

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.index_writer import IndexWriterLease
from edgelens.cloud.recall import CorrectedViews
from edgelens.errors import EdgelensError
from edgelens.search.base import VectorIndex
from edgelens.wire.names import CATALOG_CHANNEL

logger = logging.getLogger(__name__)


class CatalogFollower:
    def __init__(
        self,
        *,
        store: CatalogStore,
        index: VectorIndex,
        recipe: CatalogRecipe,
        after_seq: int,
        poll_s: float,
        redis_url: str,
        shared_index: str | None = None,
        writer_ttl_s: float = 10.0,
        corrected: CorrectedViews | None = None,
    ) -> None:
        self._store = store
        self._index = index
        self._recipe = recipe
        self._corrected = corrected
        self.applied_seq = after_seq
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=2.0)
        self.lease = (
            IndexWriterLease(self._redis, shared_index=shared_index, ttl_s=writer_ttl_s)
            if shared_index
            else None
        )
        # The writer renews its lease every round: at least three times per TTL.
        self._poll_s = min(poll_s, writer_ttl_s / 3) if self.lease else poll_s
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._database_listener = store.change_listener(self._on_notification)
        self._listener: threading.Thread | None = None
        self._notifications_down = False
        self._thread = threading.Thread(target=self._run, name="catalog-follower", daemon=True)

    def start(self) -> None:
        if self._database_listener is not None:
            self._database_listener.start()
            self._thread.start()
            return
        try:
            self._pubsub.subscribe(**{CATALOG_CHANNEL: self._on_notification})
            self._listener = self._pubsub.run_in_thread(
                sleep_time=0.2, daemon=True, exception_handler=self._listener_failed
            )
        except redis.RedisError as exc:
            logger.warning("no catalog notifications (%s); polling every %.1fs", exc, self._poll_s)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.stop()
            self._listener.join(timeout=2)
        if self._database_listener is not None:
            self._database_listener.stop()
        if self.lease is not None:
            self.lease.release()
        self._pubsub.close()
        self._redis.close()
        logger.info("catalog follower stopped at change %d", self.applied_seq)

    def apply_pending(self) -> int:
        """Apply every change after :attr:`applied_seq`; returns how many items changed.

        On a shared index, only while holding its writer lease, from the change the index
        was last recorded at; otherwise :attr:`applied_seq` just follows the writer's record.
        """
        if self.lease is not None and not self._resume_as_writer(self.lease):
            return 0
        total = 0
        while changes := self._store.changes_since(self.applied_seq):
            latest: dict[str, str] = {}
            for _, item_id, op in changes:
                latest[item_id] = op  # the last change of an item wins
            upserts = [item_id for item_id, op in latest.items() if op == "upsert"]
            items, matrices = (
                self._store.vectors(self._index.model_id, self._recipe.recipe_id, upserts)
                if upserts
                else ([], [])
            )
            present = {item.item_id for item in items}
            gone = [item_id for item_id in latest if item_id not in present]
            if gone:
                self._index.remove(gone)
            if items:
                self._index.upsert(items, matrices)
            self.applied_seq = changes[-1][0]
            if self.lease is not None:
                self.lease.record(self.applied_seq)
            total += len(latest)
            logger.info(
                "catalog change %d applied: %d upserted, %d removed, %d searchable",
                self.applied_seq,
                len(items),
                len(gone),
                len(self._index),
            )
        return total

    def _resume_as_writer(self, lease: IndexWriterLease) -> bool:
        """Whether this worker writes the shared index now; aligns :attr:`applied_seq` with
        the change the shared index is recorded at (written by whichever worker held it)."""
        writer = lease.hold()
        recorded = lease.applied_seq()
        if recorded is not None:
            self.applied_seq = recorded
        elif writer:
            logger.warning(
                "no record of the change %s reflects; taking change %d, the catalog's when "
                "this worker opened it",
                lease.shared_index,
                self.applied_seq,
            )
            lease.record(self.applied_seq)
        return writer

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.apply_pending()
                if self._corrected is not None:
                    self._corrected.refresh()
            except EdgelensError:  # survive a bad moment of the database
                logger.exception("catalog changes not applied yet; retrying")
            self._wake.wait(self._poll_s)
            self._wake.clear()

    def _on_notification(self, _message: object = None) -> None:
        if self._notifications_down:
            logger.info("catalog notifications are back")
            self._notifications_down = False
        self._wake.set()

    def _listener_failed(self, exc: BaseException, pubsub: object, thread: object) -> None:
        """redis-py keeps the listener looping (and re-subscribing) after this returns."""
        if not self._notifications_down:
            logger.warning("catalog notifications lost (%s); polling until Redis is back", exc)
            self._notifications_down = True
        self._stop.wait(1.0)
