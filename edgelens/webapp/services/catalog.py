"""Catalog changes from the web: the same ingest code as ``edgelens catalog add``.

An upload is copied to a temporary file (counting bytes, so an oversize upload is refused
before it is featurized) and imported from there; ``add_items`` stores the image only once
it decoded, so a corrupt upload leaves the catalog and the images folder untouched.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import cv2

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.images import ImageType, stored_type
from edgelens.catalog.ingest import add_items
from edgelens.catalog.isolate import item_region
from edgelens.catalog.models import (
    ITEM_ID_PATTERN,
    ITEM_ID_RULE,
    CatalogItem,
    ItemPhoto,
    ItemSource,
    PhotoOrigin,
)
from edgelens.catalog.store import CatalogStore
from edgelens.errors import (
    ImageDecodeError,
    ItemNotFoundError,
    UploadRejectedError,
    UploadTooLargeError,
)
from edgelens.featurizer.preprocess import IMAGE_SUFFIXES, decode_image
from edgelens.featurizer.runtime import Featurizer
from edgelens.settings import Settings

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16


@dataclass(frozen=True)
class Ingest:
    """What an uploaded photo is imported with: the catalog, the featurizer, where images
    are stored, the catalog's recipe, and the largest upload taken; ``also``, other models
    it is featurized with too (the one a rollout under way moves the fleet from)."""

    store: CatalogStore
    featurizer: Featurizer
    images_dir: Path
    recipe: CatalogRecipe
    max_bytes: int
    also: tuple[Featurizer, ...] = ()

    @classmethod
    def from_settings(
        cls,
        *,
        store: CatalogStore,
        featurizer: Featurizer,
        settings: Settings,
        also: tuple[Featurizer, ...] = (),
    ) -> Ingest:
        return cls(
            store=store,
            featurizer=featurizer,
            images_dir=settings.images_dir,
            recipe=CatalogRecipe(settings.catalog.views),
            max_bytes=settings.web.max_upload_bytes,
            also=also,
        )


def add_upload(
    *,
    ingest: Ingest,
    upload: BinaryIO,
    filename: str,
    item_id: str | None = None,
    name: str | None = None,
    price: float | None = None,
    currency: str | None = None,
    available: bool = True,
) -> CatalogItem:
    """Add one item from one photo, or give an existing item this photo in place of the
    one an earlier import or upload of it gave (photos added one by one stay); the id
    defaults to the file name's stem."""
    item_id = item_id or Path(filename).stem
    source = ItemSource(item_id, (), name=name, price=price, currency=currency, available=available)
    _import_upload(ingest=ingest, upload=upload, filename=filename, source=source)
    logger.info("item %s added from upload %s", item_id, filename)
    return ingest.store.get(item_id)


def add_photo(
    *,
    ingest: Ingest,
    item_id: str,
    upload: BinaryIO,
    filename: str,
    origin: PhotoOrigin = PhotoOrigin.ADDED,
) -> list[ItemPhoto]:
    """Give an existing item one more photo (front, back, a photo taken in the shop), cut
    to the item where it stands among other things (:mod:`edgelens.catalog.isolate`); the
    index takes it as soon as the worker reads the change. Returns the item's photos."""
    ingest.store.get(item_id)  # an unknown item is an ItemNotFoundError, before any work
    source = ItemSource(item_id, (), origin=origin)
    _import_upload(ingest=ingest, upload=upload, filename=filename, source=source, isolate=True)
    logger.info("item %s: photo added from %s", item_id, filename)
    return ingest.store.photos(item_id)


def remove_photo(*, store: CatalogStore, item_id: str, image_sha256: str) -> list[ItemPhoto]:
    """Take one photo from an item (never its last: remove the item instead); its image
    file stays, as another item may show it. Returns the item's photos."""
    with store.transaction() as write:
        write.remove_photo(item_id, image_sha256)
    logger.info("item %s: photo %s removed", item_id, image_sha256)
    return store.photos(item_id)


def _import_upload(
    *,
    ingest: Ingest,
    upload: BinaryIO,
    filename: str,
    source: ItemSource,
    isolate: bool = False,
) -> None:
    """Stage the upload (counted, refused past ``ingest.max_bytes``; with ``isolate`` cut
    to its item) and import it as ``source``'s photo; any failure is an UploadRejectedError
    naming the file."""
    if not ITEM_ID_PATTERN.match(source.item_id):
        raise UploadRejectedError(f"item id {source.item_id!r}: {ITEM_ID_RULE}")
    suffix = Path(filename).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="edgelens-upload-") as tmp:
        # The suffix is kept: the stored image's name (and its served type) come from it.
        staged = Path(tmp) / f"upload{suffix if suffix in IMAGE_SUFFIXES else ''}"
        copy_at_most(upload, staged, ingest.max_bytes)
        if isolate:
            staged = _cut_to_item(staged, filename)
        for featurizer in (ingest.featurizer, *ingest.also):
            report = add_items(
                store=ingest.store,
                featurizer=featurizer,
                sources=[replace(source, images=(staged,))],
                images_dir=ingest.images_dir,
                recipe=ingest.recipe,
            )
            if report.failed:
                break
    if report.failed:
        _, reason = report.failed[0]
        raise UploadRejectedError(f"{filename}: {reason}")


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
    with store.transaction() as write:
        # Read inside the transaction so an item deleted meanwhile is not brought back.
        held = write.get(item_id)
        if held is None:
            raise ItemNotFoundError.of(item_id)
        item = replace(held, name=name, price=price, currency=currency, available=available)
        write.upsert(item)
    return item


def remove_item(*, store: CatalogStore, item_id: str) -> None:
    """Delete an item; its image file stays (another item may share it, a re-add reuses it)."""
    if not store.remove([item_id]):
        raise ItemNotFoundError.of(item_id)


def image_file(
    *, store: CatalogStore, images_dir: Path, item_id: str, image_sha256: str | None = None
) -> tuple[Path, ImageType]:
    """An item's stored cover image (or the photo ``image_sha256`` of it) and its format,
    read from its content: what it is served as."""
    if image_sha256 is None:
        relative = store.get(item_id).image_file
    else:
        photos = {p.image_sha256: p.image_file for p in store.photos(item_id)}
        if image_sha256 not in photos:
            raise ItemNotFoundError(f"catalog item {item_id!r} has no photo {image_sha256}")
        relative = photos[image_sha256]
    path = images_dir / relative
    try:
        return path, stored_type(path)
    except OSError as exc:
        raise ItemNotFoundError(f"the image of catalog item {item_id!r} is missing") from exc
    except ImageDecodeError as exc:
        raise ItemNotFoundError(f"the stored file of catalog item {item_id!r}: {exc}") from exc


def photo_url(item_id: str, image_sha256: str) -> str:
    """Where one photo of an item is served (:func:`image_file`)."""
    return f"/catalog/images/{quote(item_id, safe='')}/{image_sha256}"


def _cut_to_item(staged: Path, filename: str) -> Path:
    """The staged photo cut down to its item, as a PNG beside it."""
    try:
        image = decode_image(staged.read_bytes())
    except ImageDecodeError as exc:  # its name here is the buffer's size: the file's instead
        reason = str(exc).rpartition(": <")[0] or str(exc)
        raise UploadRejectedError(f"{filename}: {reason}") from exc
    ok, png = cv2.imencode(".png", item_region(image))
    if not ok:  # pragma: no cover - OpenCV encodes any decoded image
        raise UploadRejectedError(f"{filename}: cannot be stored")
    cropped = staged.with_name("item.png")
    cropped.write_bytes(png.tobytes())
    return cropped


def copy_at_most(source: BinaryIO, target: Path, max_bytes: int) -> None:
    written = 0
    with target.open("wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise UploadTooLargeError(f"the upload is larger than {max_bytes} bytes")
            out.write(chunk)
    if written == 0:
        raise UploadRejectedError("the uploaded file is empty")
