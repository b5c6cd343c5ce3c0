"""The catalog keypoints stage two verifies against, held in memory for the items it needs.

Verification reads the keypoints of up to ``search.verify_candidates`` items per confirmed
message. Reading each from the catalog per candidate per message is a database round trip
each; holding all of them is a million items' worth. So the worker keeps the items it has
needed lately (a bounded LRU), loads the missing ones of a message in one batch, and forgets
an item as soon as the catalog's change log says it changed.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

from edgelens.catalog.store import CatalogStore
from edgelens.featurizer import local_features
from edgelens.featurizer.local_features import LocalFeatures

logger = logging.getLogger(__name__)

# Items held, decoded for matching (~0.8 MB each with their RootSIFT): about 400 MB, the
# candidates of a few dozen views; the codes they come from are 16 KB each in the catalog.
CAPACITY = 512


class KeypointCache:
    """``cache(item_ids)`` → the stored keypoints of those items that have any."""

    def __init__(self, store: CatalogStore, *, capacity: int = CAPACITY) -> None:
        self._store = store
        self._capacity = capacity
        self._lock = threading.Lock()
        # item id → its keypoints, or None when none are stored (asked once, not each time)
        self._held: OrderedDict[str, LocalFeatures | None] = OrderedDict()
        self._seq = store.last_change
        self.loads = 0  # batches read from the catalog

    def __len__(self) -> int:
        return len(self._held)

    def __call__(self, item_ids: Sequence[str]) -> dict[str, LocalFeatures]:
        with self._lock:
            self._forget_changed()
            missing = [item_id for item_id in item_ids if item_id not in self._held]
            if missing:
                loaded = self._store.items_local_features(missing, local_features.METHOD_ID)
                self.loads += 1
                for item_id in missing:
                    self._held[item_id] = loaded.get(item_id)
            found = {}
            for item_id in item_ids:
                self._held.move_to_end(item_id)
                if (features := self._held[item_id]) is not None:
                    found[item_id] = features
            while len(self._held) > self._capacity:
                self._held.popitem(last=False)
            return found

    def _forget_changed(self) -> None:
        """Drop the items the catalog changed since the last look (a new photo, removed)."""
        while changes := self._store.changes_since(self._seq):
            for _, item_id, _ in changes:
                self._held.pop(item_id, None)
            self._seq = changes[-1][0]
