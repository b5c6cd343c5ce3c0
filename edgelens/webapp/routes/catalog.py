"""The catalog page and each item's page: upload, edit and delete items, add and remove an
item's photos; serve their images.

Forms post here and are redirected back to the page (post/redirect/get); an upload the
catalog refuses re-renders the page with the reason and the matching status code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from edgelens.catalog.models import ITEM_ID_PATTERN, ITEM_ID_RULE, MAX_PHOTOS
from edgelens.catalog.store import CatalogStore
from edgelens.errors import (
    LastPhotoError,
    UploadRejectedError,
    UploadTooLargeError,
)
from edgelens.settings import Settings
from edgelens.webapp.deps import (
    CatalogChanged,
    IngestDep,
    ItemId,
    PhotoId,
    SettingsDep,
    SignedInUser,
    StoreDep,
    signed_in_user,
)
from edgelens.webapp.services import catalog, corrections
from edgelens.webapp.templating import templates

router = APIRouter(prefix="/catalog", include_in_schema=False)

Notice = Literal[
    "added",
    "updated",
    "removed",
    "restored",
    "photo added",
    "photo removed",
    "correction undone",
]
PAGE_SIZE = 48  # items on a catalog page


@dataclass(frozen=True)
class Browse:
    """What the catalog page shows: a search, an availability, and where the page starts."""

    text: str = ""
    available: bool | None = None
    after: str = ""
    before: str = ""

    def url(self, **page: str) -> str:
        query = {"q": self.text, "available": {True: "yes", False: "no"}.get(self.available, "")}
        return "/catalog?" + urlencode({k: v for k, v in (query | page).items() if v})


@router.get("", response_class=HTMLResponse)
def catalog_page(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    notice: Notice | None = None,
    item: Annotated[str | None, Query(max_length=128)] = None,
    q: Annotated[str, Query(max_length=100, description="Part of a name, or an id.")] = "",
    available: Literal["", "yes", "no"] = "",
    after: Annotated[str, Query(max_length=128)] = "",
    before: Annotated[str, Query(max_length=128)] = "",
) -> HTMLResponse:
    """Every item, a page at a time in id order; found by name or id, by availability."""
    browse = Browse(q.strip(), {"": None, "yes": True, "no": False}[available], after, before)
    return _page(request, store, settings, browse, notice=notice, item=item)


@router.post("/items", response_class=HTMLResponse)
def upload_item(
    request: Request,
    store: StoreDep,
    catalog_changed: CatalogChanged,
    settings: SettingsDep,
    ingest: IngestDep,
    image: Annotated[UploadFile, File(description="The item's photo.")],
    item_id: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    price: Annotated[str, Form()] = "",
    currency: Annotated[str, Form()] = "",
    available: Annotated[bool, Form()] = False,
) -> Response:
    """Empty fields mean "not given": a new item takes the defaults, an existing one keeps its.
    A value the form would not have sent, or a photo the catalog refuses, re-renders the
    form as typed, with the reason beside the field.

    ``available`` is a checkbox, which browsers leave out when unchecked: absent means False.
    """
    typed = {
        "item_id": item_id,
        "name": name,
        "price": price,
        "currency": currency,
        "available": available,
    }
    status = 422
    problems = _problems(
        item_id=_item_id_problem(item_id),
        price=_price_problem(price),
        currency=_currency_problem(currency, required=False),
    )
    if not problems:
        try:
            item = catalog.add_upload(
                ingest=ingest,
                upload=image.file,
                filename=image.filename or "",
                item_id=item_id.strip() or None,
                name=name.strip() or None,
                price=float(price) if price.strip() else None,
                currency=currency.strip() or None,
                available=available,
            )
        except (UploadTooLargeError, UploadRejectedError) as exc:
            status = 413 if isinstance(exc, UploadTooLargeError) else 422
            problems = {"image": str(exc)}
        else:
            catalog_changed()
            return _item_back(item.item_id, "added")
    return _page(
        request, store, settings, Browse(), upload=typed, upload_errors=problems, status_code=status
    )


@router.get("/items/{item_id}", response_class=HTMLResponse)
def item_page(
    request: Request,
    item_id: ItemId,
    store: StoreDep,
    settings: SettingsDep,
    notice: Notice | None = None,
) -> HTMLResponse:
    return _item_page(request, store, settings, item_id, notice=notice)


@router.post("/items/{item_id}/photos", response_class=HTMLResponse)
def add_photo(
    request: Request,
    item_id: ItemId,
    store: StoreDep,
    catalog_changed: CatalogChanged,
    settings: SettingsDep,
    ingest: IngestDep,
    image: Annotated[UploadFile, File(description="A photo of the item.")],
) -> Response:
    try:
        catalog.add_photo(
            ingest=ingest, item_id=item_id, upload=image.file, filename=image.filename or ""
        )
    except (UploadTooLargeError, UploadRejectedError) as exc:
        status = 413 if isinstance(exc, UploadTooLargeError) else 422
        return _item_page(
            request, store, settings, item_id, photo_error=str(exc), status_code=status
        )
    catalog_changed()
    return _item_back(item_id, "photo added")


@router.post("/items/{item_id}/photos/{photo}/delete", response_class=HTMLResponse)
def remove_photo(
    request: Request,
    item_id: ItemId,
    photo: PhotoId,
    store: StoreDep,
    catalog_changed: CatalogChanged,
    settings: SettingsDep,
) -> Response:
    try:
        catalog.remove_photo(store=store, item_id=item_id, image_sha256=photo)
    except LastPhotoError as exc:
        return _item_page(request, store, settings, item_id, error=str(exc), status_code=409)
    catalog_changed()
    return _item_back(item_id, "photo removed")


@router.post("/items/{item_id}/corrections/{correction_id}/undo")
def undo_correction(
    item_id: ItemId,
    correction_id: Annotated[int, Path(ge=1)],
    store: StoreDep,
    catalog_changed: CatalogChanged,
    user: SignedInUser,
) -> RedirectResponse:
    """Undo a correction of this item: the photo it gave the item goes again."""
    corrections.undo(store=store, correction_id=correction_id, user=user, item_id=item_id)
    catalog_changed()
    return _item_back(item_id, "correction undone")


@router.post("/items/{item_id}", response_class=HTMLResponse)
def edit_item(
    request: Request,
    item_id: ItemId,
    store: StoreDep,
    catalog_changed: CatalogChanged,
    settings: SettingsDep,
    name: Annotated[str, Form()] = "",
    currency: Annotated[str, Form()] = "",
    price: Annotated[str, Form()] = "",
    available: Annotated[bool, Form()] = False,
) -> Response:
    """Save the item's details; a value the form would not have sent (the browser checks
    them too) re-renders the form as typed, with the reason beside the field."""
    typed = {"name": name, "price": price, "currency": currency, "available": available}
    problems = _problems(
        name="" if name.strip() else "Give the item a name.",
        price=_price_problem(price),
        currency=_currency_problem(currency, required=True),
    )
    if problems:
        return _item_page(
            request, store, settings, item_id, edit=typed, edit_errors=problems, status_code=422
        )
    catalog.update_item(
        store=store,
        item_id=item_id,
        name=name.strip(),
        price=float(price) if price.strip() else None,
        currency=currency.strip(),
        available=available,
    )
    catalog_changed()
    return _item_back(item_id, "updated")


def _problems(**why: str) -> dict[str, str]:
    """The reasons given, by field ("" for a field that is fine)."""
    return {field: reason for field, reason in why.items() if reason}


def _item_id_problem(item_id: str) -> str:
    """Why a typed item id is not one ("" when it is, or left empty: from the file name)."""
    if not item_id.strip() or ITEM_ID_PATTERN.match(item_id.strip()):
        return ""
    return f"An item id is {ITEM_ID_RULE}."


def _currency_problem(currency: str, *, required: bool) -> str:
    """Why a typed currency is not one ("" when it is, or left empty where that is allowed)."""
    if not currency.strip():
        return "Give a currency, e.g. EUR." if required else ""
    return "" if len(currency.strip()) <= 8 else "A currency is at most 8 characters, e.g. EUR."


def _price_problem(price: str) -> str:
    """Why a typed price is not one ("" when it is, or left empty: no price)."""
    if not price.strip():
        return ""
    try:
        value = float(price)
    except ValueError:
        return "The price is a number, e.g. 2.49."
    if not math.isfinite(value):
        return "The price is a number, e.g. 2.49."
    return "" if value >= 0 else "The price is 0 or more."


@router.post("/items/{item_id}/delete")
def delete_item(
    item_id: ItemId,
    store: StoreDep,
    catalog_changed: CatalogChanged,
) -> RedirectResponse:
    """Delete the item; the catalog page then offers to undo it."""
    catalog.remove_item(store=store, item_id=item_id)
    catalog_changed()
    return _back("removed", item_id)


@router.post("/items/{item_id}/restore")
def restore_item(
    item_id: ItemId,
    store: StoreDep,
    catalog_changed: CatalogChanged,
) -> RedirectResponse:
    """Undo a delete: the item and its photos come back, searchable at once."""
    store.restore(item_id)
    catalog_changed()
    return _item_back(item_id, "restored")


@router.get("/images/{item_id}")
def item_image(item_id: ItemId, store: StoreDep, settings: SettingsDep) -> FileResponse:
    path, kind = catalog.image_file(store=store, images_dir=settings.images_dir, item_id=item_id)
    return FileResponse(path, media_type=kind.media_type)


@router.get("/images/{item_id}/{photo}")
def photo_image(
    item_id: ItemId, photo: PhotoId, store: StoreDep, settings: SettingsDep
) -> FileResponse:
    path, kind = catalog.image_file(
        store=store, images_dir=settings.images_dir, item_id=item_id, image_sha256=photo
    )
    return FileResponse(path, media_type=kind.media_type)


def _item_page(
    request: Request,
    store: CatalogStore,
    settings: Settings,
    item_id: str,
    *,
    status_code: int = 200,
    notice: Notice | None = None,
    error: str | None = None,
    photo_error: str | None = None,
    edit: dict[str, object] | None = None,
    edit_errors: dict[str, str] | None = None,
) -> HTMLResponse:
    """The item's page; ``error`` said at the top, ``photo_error`` beside the photo field
    of the form that was refused; ``edit``: the edit form as typed, ``edit_errors`` beside
    its fields."""
    return _render(
        request,
        settings,
        "item.html",
        status_code,
        it=store.get(item_id),
        photos=[
            (photo, catalog.photo_url(item_id, photo.image_sha256))
            for photo in store.photos(item_id)
        ],
        max_photos=MAX_PHOTOS,
        corrections=store.corrections(item_id=item_id),
        notice=notice,
        error=error,
        photo_error=photo_error,
        edit=edit,
        edit_errors=edit_errors or {},
    )


def _render(
    request: Request, settings: Settings, template: str, status_code: int, **context: object
) -> HTMLResponse:
    """A catalog page with what every one of them shows: whether the visitor may edit, and
    the upload limit."""
    return templates.TemplateResponse(
        request,
        template,
        {
            **context,
            "signed_in": signed_in_user(request) is not None,
            "max_upload_bytes": settings.web.max_upload_bytes,
        },
        status_code=status_code,
    )


def _item_back(item_id: str, notice: Notice) -> RedirectResponse:
    item = quote(item_id, safe="")
    return RedirectResponse(f"/catalog/items/{item}?notice={quote(notice)}", status_code=303)


def _page(
    request: Request,
    store: CatalogStore,
    settings: Settings,
    browse: Browse,
    *,
    status_code: int = 200,
    notice: Notice | None = None,
    item: str | None = None,
    upload: dict[str, object] | None = None,
    upload_errors: dict[str, str] | None = None,
) -> HTMLResponse:
    """The catalog page; ``upload``: the upload form as typed, ``upload_errors`` beside its
    fields."""
    found = store.browse(
        text=browse.text,
        available=browse.available,
        after=browse.after,
        before=browse.before,
        limit=PAGE_SIZE,
    )
    more = len(found) > PAGE_SIZE
    items = (found[1:] if browse.before else found[:PAGE_SIZE]) if more else found
    later = bool(items) and (bool(browse.before) or more)
    earlier = bool(items) and (bool(browse.after) or (bool(browse.before) and more))
    return _render(
        request,
        settings,
        "catalog.html",
        status_code,
        items=items,
        total=len(store),
        one_page=not (later or earlier),
        paged=bool(browse.after or browse.before),
        q=browse.text,
        available=browse.available,
        next_url=browse.url(after=items[-1].item_id) if later else None,
        previous_url=browse.url(before=items[0].item_id) if earlier else None,
        notice=notice,
        item=item,
        upload=upload,
        upload_errors=upload_errors or {},
    )


def _back(notice: Notice, item_id: str) -> RedirectResponse:
    item = quote(item_id, safe="")
    return RedirectResponse(f"/catalog?notice={notice}&item={item}#item-{item}", status_code=303)
