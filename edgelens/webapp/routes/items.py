"""The catalog's JSON API: an item with its photos; add and remove photos.

Changing needs a signed-in admin's session and its ``X-CSRF-Token`` header, as every
state-changing request does (:func:`edgelens.webapp.deps.guard`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile

from edgelens.catalog.store import CatalogStore
from edgelens.webapp.deps import CatalogChanged, IngestDep, ItemId, PhotoId, StoreDep
from edgelens.webapp.schemas import ErrorOut, ItemBriefOut, ItemOut, PhotoOut
from edgelens.webapp.services import catalog

router = APIRouter(prefix="/api/items", tags=["catalog"])

_REFUSED = {
    404: {"model": ErrorOut, "description": "No such item (or photo)."},
    413: {"model": ErrorOut, "description": "The upload is larger than allowed."},
    422: {"model": ErrorOut, "description": "Not a usable photo, or the item is full."},
}


@router.get("")
def find_items(
    store: StoreDep,
    q: Annotated[str, Query(max_length=100, description="Part of the name or id.")] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[ItemBriefOut]:
    """Items whose id starts with ``q`` or whose name has words starting with its words, by
    id (no ``q``: the first by id)."""
    return [
        ItemBriefOut(item_id=item.item_id, name=item.name)
        for item in store.browse(text=q.strip(), limit=limit)[:limit]
    ]


@router.get("/{item_id}", responses={404: _REFUSED[404]})
def get_item(item_id: ItemId, store: StoreDep) -> ItemOut:
    """The item, with its photos."""
    return _item_out(store, item_id)


@router.post("/{item_id}/photos", status_code=201, responses=_REFUSED)
def add_photo(
    item_id: ItemId,
    store: StoreDep,
    catalog_changed: CatalogChanged,
    ingest: IngestDep,
    image: Annotated[UploadFile, File(description="A photo of the item.")],
) -> ItemOut:
    """Give the item one more photo; the worker's index takes it while serving."""
    catalog.add_photo(
        ingest=ingest, item_id=item_id, upload=image.file, filename=image.filename or ""
    )
    catalog_changed()
    return _item_out(store, item_id)


@router.delete(
    "/{item_id}/photos/{photo}",
    responses={
        404: _REFUSED[404],
        409: {"model": ErrorOut, "description": "The item's last photo."},
    },
)
def remove_photo(
    item_id: ItemId,
    photo: PhotoId,
    store: StoreDep,
    catalog_changed: CatalogChanged,
) -> ItemOut:
    """Take one photo from the item (not its last: remove the item instead)."""
    catalog.remove_photo(store=store, item_id=item_id, image_sha256=photo)
    catalog_changed()
    return _item_out(store, item_id)


def _item_out(store: CatalogStore, item_id: str) -> ItemOut:
    item = store.get(item_id)
    return ItemOut(
        item_id=item.item_id,
        name=item.name,
        price=item.price,
        currency=item.currency,
        available=item.available,
        photos=[
            PhotoOut(
                sha256=p.image_sha256,
                origin=p.origin.value,
                added_at=p.added_at,
                url=catalog.photo_url(item_id, p.image_sha256),
            )
            for p in store.photos(item_id)
        ],
    )
