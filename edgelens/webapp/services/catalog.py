"""Catalog changes from the web: the same ingest code as ``edgelens catalog add``.

An upload is copied to a temporary file (counting bytes, so an oversize upload is refused
before it is featurized) and imported from there; ``add_items`` stores the image only once
it decoded, so a corrupt upload leaves the catalog and the images folder untouched.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.images import ImageType, stored_type
from edgelens.catalog.ingest import add_items
from edgelens.catalog.models import ITEM_ID_PATTERN, ITEM_ID_RULE, CatalogItem, ItemSource
from edgelens.catalog.store import CatalogStore
from edgelens.errors import CatalogError, ImageDecodeError, ItemNotFoundError
from edgelens.featurizer.preprocess import IMAGE_SUFFIXES
from edgelens.featurizer.runtime import Featurizer

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16


class UploadTooLargeError(CatalogError):
    """The uploaded file is larger than ``web.max_upload_bytes``."""


class UploadRejectedError(CatalogError):
    """The upload is not a usable catalog image (corrupt, empty, or a bad item id)."""


def add_upload(
    *,
    store: CatalogStore,
    featurizer: Featurizer,
    images_dir: Path,
    recipe: CatalogRecipe,
    upload: BinaryIO,
    filename: str,
    max_bytes: int,
    item_id: str | None = None,
    name: str | None = None,
    price: float | None = None,
    currency: str | None = None,
    available: bool = True,
) -> CatalogItem:
    """Add (or replace the image of) one item; the id defaults to the file name's stem."""
    suffix = Path(filename).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="edgelens-upload-") as tmp:
        # The suffix is kept: the stored image's name (and its served type) come from it.
        staged = Path(tmp) / f"upload{suffix if suffix in IMAGE_SUFFIXES else ''}"
        _copy_at_most(upload, staged, max_bytes)
        item_id = item_id or Path(filename).stem
        if not ITEM_ID_PATTERN.match(item_id):
            raise UploadRejectedError(f"item id {item_id!r}: {ITEM_ID_RULE}")
        source = ItemSource(
            item_id, staged, name=name, price=price, currency=currency, available=available
        )
        report = add_items(
            store=store,
            featurizer=featurizer,
            sources=[source],
            images_dir=images_dir,
            recipe=recipe,
        )
    if report.failed:
        _, reason = report.failed[0]
        raise UploadRejectedError(f"{filename}: {reason}")
    logger.info("item %s added from upload %s", item_id, filename)
    return store.get(item_id)


def update_item(
    *,
    store: CatalogStore,
    item_id: str,
    name: str,
    price: float | None,
    currency: str,
    available: bool,
) -> CatalogItem:
    """Change an item's metadata; its image and vectors stay as they are."""
    with store.transaction() as conn:
        # Read inside the transaction so an item deleted meanwhile is not brought back.
        item = replace(
            store.get(item_id), name=name, price=price, currency=currency, available=available
        )
        store.upsert(conn, item)
    return item


def remove_item(*, store: CatalogStore, item_id: str) -> None:
    """Delete an item; its image file stays (another item may share it, a re-add reuses it)."""
    if not store.remove([item_id]):
        raise ItemNotFoundError(f"no catalog item {item_id!r}")


def image_file(*, store: CatalogStore, images_dir: Path, item_id: str) -> tuple[Path, ImageType]:
    """An item's stored image and its format, read from its content: what it is served as."""
    path = images_dir / store.get(item_id).image_file
    try:
        return path, stored_type(path)
    except OSError as exc:
        raise ItemNotFoundError(f"the image of catalog item {item_id!r} is missing") from exc
    except ImageDecodeError as exc:
        raise ItemNotFoundError(f"the stored file of catalog item {item_id!r}: {exc}") from exc


def _copy_at_most(source: BinaryIO, target: Path, max_bytes: int) -> None:
    written = 0
    with target.open("wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise UploadTooLargeError(f"the upload is larger than {max_bytes} bytes")
            out.write(chunk)
    if written == 0:
        raise UploadRejectedError("the uploaded file is empty")
