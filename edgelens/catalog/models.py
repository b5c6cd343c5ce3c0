"""Typed records of the catalog."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

# Item ids go into URLs, form actions and file names: one pattern, matched whole (\Z: a
# trailing newline is not allowed, as ``$`` would).
ITEM_ID_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
# A photo is named by its image's sha256 (lower-case hex).
PHOTO_ID_PATTERN = re.compile(r"\A[0-9a-f]{64}\Z")
ITEM_ID_RULE = "letters, digits, '.', '_' or '-' (at most 128), from a letter or digit"


# The most photos one item holds (front, back, sides, photos taken in the shop): each adds
# the recipe's rows to the index, and stage two verifies the best of them.
MAX_PHOTOS = 8

_Held = TypeVar("_Held")


class PhotoOrigin(StrEnum):
    """How a photo joined its item. An import (``catalog add``) replaces the photos earlier
    imports gave the item; photos added one by one stay until someone removes them."""

    IMPORT = "import"
    ADDED = "added"  # from the catalog page or the JSON API
    CORRECTION = "correction"  # a device's view, from a correction on the device page


def indexed_photos(photos: Sequence[tuple[PhotoOrigin, _Held]]) -> list[_Held]:
    """Of one item's photos (origin and whatever the caller holds of each, in order), what
    of those that the answer searches: the vector index's rows, and stage two's keypoints.

    A correction's photo is kept with its item, but the answer uses the corrected view
    itself (:mod:`edgelens.cloud.recall`): a correction is one camera's view of one shelf,
    and as index rows it drew other items' views to its item, and as a photo to verify it
    confirmed its item in other items' views (docs/benchmarks.md, several photos and
    corrections). An item with nothing but corrections keeps them all.
    """
    if all(origin is PhotoOrigin.CORRECTION for origin, _ in photos):
        return [held for _, held in photos]
    return [held for origin, held in photos if origin is not PhotoOrigin.CORRECTION]


@dataclass(frozen=True)
class CatalogItem:
    """One sellable item. ``image_sha256``/``image_file`` name its cover photo (the first
    of its photos, :class:`ItemPhoto`); every image is stored once under its sha256."""

    item_id: str
    name: str
    price: float | None
    currency: str
    available: bool
    image_sha256: str
    image_file: str  # relative to the catalog's images directory


@dataclass(frozen=True)
class ItemPhoto:
    """One photo of an item: the stored image, and how and when it joined the item."""

    item_id: str
    image_sha256: str
    image_file: str  # relative to the catalog's images directory
    origin: PhotoOrigin
    added_at: float


@dataclass(frozen=True)
class Correction:
    """Someone said what a device's frame showed: catalog item ``item_id`` (its view then
    became the photo ``photo_sha256`` of it, unless the item had that photo already), or,
    with no item, something the catalog does not hold. Undone corrections stay on record."""

    correction_id: int  # 0 until stored
    at: float
    user: str
    device_id: str
    seq: int
    item_id: str | None
    photo_sha256: str | None
    undone_at: float | None = None
    undone_by: str | None = None


@dataclass(frozen=True)
class ItemSource:
    """An item to import: where its photos are and the metadata that came with them.

    With ``origin`` IMPORT the photos replace those an earlier import gave the item (a
    re-imported folder is the truth); otherwise they are added to the item's photos.

    Metadata left as None keeps what the catalog already holds for the item (so
    re-adding a folder of images never wipes names and prices from a manifest),
    or takes the default for a new item.
    """

    item_id: str
    images: tuple[Path, ...]
    name: str | None = None
    price: float | None = None
    currency: str | None = None
    available: bool | None = None
    origin: PhotoOrigin = PhotoOrigin.IMPORT

    def to_item(
        self, previous: CatalogItem | None, *, image_sha256: str, image_file: str
    ) -> CatalogItem:
        base = previous or CatalogItem(
            self.item_id, self.item_id.replace("_", " "), None, "EUR", True, "", ""
        )
        given = {
            field: value
            for field, value in (
                ("name", self.name),
                ("price", self.price),
                ("currency", self.currency),
                ("available", self.available),
            )
            if value is not None
        }
        return replace(base, **given, image_sha256=image_sha256, image_file=image_file)


@dataclass
class IngestReport:
    """What an import or re-index did; ``featurized`` counts real model runs."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    featurized: int = 0
    cached: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
