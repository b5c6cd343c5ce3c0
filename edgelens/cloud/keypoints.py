"""The catalog keypoints stage two verifies against, held in memory for the items it needs.

Verification reads the keypoints of the photos of up to ``search.verify_candidates`` items
per confirmed message, with each photo's vector rows (which photo to verify against).
Reading each from the catalog per candidate per message is a database round trip
each; holding all of them is a million items' worth. So the worker keeps the items it has
needed lately (a bounded LRU), loads the missing ones of a message in one batch, and forgets
an item as soon as the catalog's change log says it changed.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from edgelens.catalog.store import CatalogStore
from edgelens.featurizer import local_features
from edgelens.search.verify import PhotoKeypoints

logger = logging.getLogger(__name__)

# Items held, decoded for matching (~0.8 MB a photo with its RootSIFT, from its 16 KB of
# codes in the catalog): about 400 MB for items of one photo, the candidates of a few
# dozen views.
CAPACITY = 512


class KeypointCache:
    """``cache(item_ids)`` → the stored keypoints of the photos of those items that have any,
    each photo with its vectors of the index's model and recipe."""

    def __init__(
        self,
        store: CatalogStore,
        *,
        model_id: str,
        recipe_id: str,
        dim: int,
        capacity: int = CAPACITY,
    ) -> None:
        self._store = store
        self._vectors_of = (model_id, recipe_id)
        self._no_vectors = np.zeros((0, dim), np.float32)
        self._capacity = capacity
        self._lock = threading.Lock()
        # item id → its photos' keypoints (empty when none are stored: asked once, not each time)
        self._held: OrderedDict[str, tuple[PhotoKeypoints, ...]] = OrderedDict()
        self._seq = store.last_change
        self.loads = 0  # batches read from the catalog
        _warn_of_earlier_methods(store)

    def __len__(self) -> int:
        return len(self._held)

    def __call__(self, item_ids: Sequence[str]) -> dict[str, tuple[PhotoKeypoints, ...]]:
        with self._lock:
            self._forget_changed()
            missing = [item_id for item_id in item_ids if item_id not in self._held]
            if missing:
                self._load(missing)
            found = {}
            for item_id in item_ids:
                self._held.move_to_end(item_id)
                if photos := self._held[item_id]:
                    found[item_id] = photos
            while len(self._held) > self._capacity:
                self._held.popitem(last=False)
            return found

    def _load(self, item_ids: list[str]) -> None:
        loaded = self._store.photos_local_features(item_ids, local_features.METHOD_ID)
        hashes = [sha for photos in loaded.values() for sha, _ in photos]
        vectors = self._store.photo_vectors(*self._vectors_of, hashes)
        self.loads += 1
        for item_id in item_ids:
            self._held[item_id] = tuple(
                PhotoKeypoints(features, vectors.get(sha, self._no_vectors))
                for sha, features in loaded.get(item_id, ())
            )

    def _forget_changed(self) -> None:
        """Drop the items the catalog changed since the last look (a new photo, removed)."""
        while changes := self._store.changes_since(self._seq):
            for _, item_id, _ in changes:
                self._held.pop(item_id, None)
            self._seq = changes[-1][0]


def _warn_of_earlier_methods(store: CatalogStore) -> None:
    """Say so when the catalog holds keypoints of an earlier extraction method (a catalog
    made by an earlier release): this worker reads only the current method's, so those
    photos' items would silently go unverified."""
    earlier = {
        method: count
        for method, count in store.local_features_counts().items()
        if method != local_features.METHOD_ID
    }
    if earlier:
        logger.warning(
            "keypoints of %d catalog photo(s) are of an earlier method (%s): stage two cannot "
            "verify their items until `edgelens catalog migrate-keypoints` re-makes them as %s",
            sum(earlier.values()),
            ", ".join(sorted(earlier)),
            local_features.METHOD_ID,
        )
