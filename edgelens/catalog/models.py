"""Typed records of the catalog."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

# Item ids go into URLs, form actions and file names: one pattern, matched whole (\Z: a
# trailing newline is not allowed, as ``$`` would).
ITEM_ID_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
ITEM_ID_RULE = "letters, digits, '.', '_' or '-' (at most 128), from a letter or digit"


@dataclass(frozen=True)
class CatalogItem:
    """One sellable item; its image is stored once under its sha256."""

    item_id: str
    name: str
    price: float | None
    currency: str
    available: bool
    image_sha256: str
    image_file: str  # relative to the catalog's images directory


@dataclass(frozen=True)
class ItemSource:
    """An item to import: where its image is and the metadata that came with it.

    Metadata left as None keeps what the catalog already holds for the item (so
    re-adding a folder of images never wipes names and prices from a manifest),
    or takes the default for a new item.
    """

    item_id: str
    image_path: Path
    name: str | None = None
    price: float | None = None
    currency: str | None = None
    available: bool | None = None

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
