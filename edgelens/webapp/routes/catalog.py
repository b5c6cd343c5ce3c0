"""The catalog page: upload, edit and delete items; serve their images.

Forms post here and are redirected back to the page (post/redirect/get); an upload the
catalog refuses re-renders the page with the reason and the matching status code.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.notify import notify_catalog_changed
from edgelens.catalog.store import CatalogStore
from edgelens.featurizer.runtime import Featurizer
from edgelens.settings import Settings
from edgelens.webapp.deps import FeaturizerDep, ItemId, SettingsDep, StoreDep
from edgelens.webapp.services import catalog
from edgelens.webapp.templating import templates

router = APIRouter(prefix="/catalog", include_in_schema=False)

Notice = Literal["added", "updated", "removed"]
Price = Annotated[float | None, Form(ge=0)]


@router.get("", response_class=HTMLResponse)
def catalog_page(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    featurizer: FeaturizerDep,
    notice: Notice | None = None,
    item: str | None = None,
) -> HTMLResponse:
    return _page(request, store, settings, featurizer, notice=notice, item=item)


@router.post("/items", response_class=HTMLResponse)
def upload_item(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    featurizer: FeaturizerDep,
    image: Annotated[UploadFile, File(description="The item's photo.")],
    item_id: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    price: Price = None,
    currency: Annotated[str, Form(max_length=8)] = "",
    available: Annotated[bool, Form()] = False,
) -> Response:
    """Empty fields mean "not given": a new item takes the defaults, an existing one keeps its.

    ``available`` is a checkbox, which browsers leave out when unchecked: absent means False.
    """
    try:
        item = catalog.add_upload(
            store=store,
            featurizer=featurizer,
            images_dir=settings.images_dir,
            recipe=CatalogRecipe(settings.catalog.views),
            upload=image.file,
            filename=image.filename or "",
            max_bytes=settings.web.max_upload_bytes,
            item_id=item_id.strip() or None,
            name=name.strip() or None,
            price=price,
            currency=currency.strip() or None,
            available=available,
        )
    except catalog.UploadTooLargeError as exc:
        return _page(request, store, settings, featurizer, error=str(exc), status_code=413)
    except catalog.UploadRejectedError as exc:
        return _page(request, store, settings, featurizer, error=str(exc), status_code=422)
    notify_catalog_changed(store=store, redis_url=str(settings.redis_url))
    return _back("added", item.item_id)


@router.post("/items/{item_id}")
def edit_item(
    item_id: ItemId,
    store: StoreDep,
    settings: SettingsDep,
    name: Annotated[str, Form(min_length=1)],
    currency: Annotated[str, Form(min_length=1, max_length=8)],
    price: Price = None,
    available: Annotated[bool, Form()] = False,
) -> RedirectResponse:
    catalog.update_item(
        store=store,
        item_id=item_id,
        name=name.strip(),
        price=price,
        currency=currency.strip(),
        available=available,
    )
    notify_catalog_changed(store=store, redis_url=str(settings.redis_url))
    return _back("updated", item_id)


@router.post("/items/{item_id}/delete")
def delete_item(item_id: ItemId, store: StoreDep, settings: SettingsDep) -> RedirectResponse:
    catalog.remove_item(store=store, item_id=item_id)
    notify_catalog_changed(store=store, redis_url=str(settings.redis_url))
    return _back("removed", item_id)


@router.get("/images/{item_id}")
def item_image(item_id: ItemId, store: StoreDep, settings: SettingsDep) -> FileResponse:
    path, kind = catalog.image_file(store=store, images_dir=settings.images_dir, item_id=item_id)
    return FileResponse(path, media_type=kind.media_type)


def _page(
    request: Request,
    store: CatalogStore,
    settings: Settings,
    featurizer: Featurizer,
    *,
    status_code: int = 200,
    notice: Notice | None = None,
    item: str | None = None,
    error: str | None = None,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "catalog.html",
        {
            "items": store.items(),
            "model_id": featurizer.model_id,
            "max_upload_bytes": settings.web.max_upload_bytes,
            "notice": notice,
            "item": item,
            "error": error,
        },
        status_code=status_code,
    )


def _back(notice: Notice, item_id: str) -> RedirectResponse:
    item = quote(item_id, safe="")
    return RedirectResponse(f"/catalog?notice={notice}&item={item}#item-{item}", status_code=303)
