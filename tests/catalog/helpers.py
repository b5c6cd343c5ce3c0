"""Reading a catalog the way tests check it."""

from collections.abc import Sequence

from edgelens.catalog.store import CatalogStore
from edgelens.featurizer.local_features import LocalFeatures


def first_photo_keypoints(
    store: CatalogStore, item_ids: Sequence[str], method: str
) -> dict[str, LocalFeatures]:
    """Each item's first photo's keypoints of ``method`` (items without any left out)."""
    found = store.photos_local_features(item_ids, method)
    return {item_id: photos[0][1] for item_id, photos in found.items()}
