"""The dashboard and device pages: rendered from Redis, then kept live by SSE (live.js);
a frame's view and its correction; and the API's schema and reference page, under the
same guard as everything else."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from redis.asyncio import Redis
from starlette.concurrency import run_in_threadpool

from edgelens.catalog.models import CatalogItem, Correction
from edgelens.catalog.store import CatalogStore
from edgelens.errors import (
    ItemNotFoundError,
    RedisUnavailableError,
    UploadRejectedError,
    ViewGoneError,
)
from edgelens.webapp.deps import (
    CatalogChanged,
    DeviceId,
    IngestDep,
    RedisDep,
    Seq,
    SignedInUser,
    StoreDep,
)
from edgelens.webapp.services import corrections, live, rollout
from edgelens.webapp.templating import templates
from edgelens.wire.records import MatchRecord

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

# Frames listed under the latest one on a device page.
HISTORY_LENGTH = 20


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, redis: RedisDep) -> HTMLResponse:
    try:
        devices, redis_error = await live.list_devices(redis=redis), None
        progress = await rollout.rollout_progress(redis=redis, devices=devices)
    except RedisUnavailableError as exc:
        logger.warning("dashboard without live data: %s", exc)
        devices, redis_error, progress = [], str(exc), None
    return templates.TemplateResponse(
        request,
        "dashboard.html",
        {
            "devices": devices,
            "redis_error": redis_error,
            "rollout": progress,
            "events_url": request.url_for("devices_events").path,
        },
    )


@router.post("/rollout/finish")
async def finish_rollout(redis: RedisDep, user: SignedInUser) -> RedirectResponse:
    """Stop answering the old model now, whatever devices still run it."""
    await rollout.finish_rollout(redis=redis, user=user)
    return RedirectResponse("/", status_code=303)


@router.get("/devices/{device_id}", response_class=HTMLResponse)
async def device_page(
    request: Request,
    device_id: DeviceId,
    redis: RedisDep,
    store: StoreDep,
    corrected: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    correction = store.correction(corrected) if corrected is not None else None
    return await _device_page(request, device_id, redis, store, correction=correction)


@router.get("/devices/{device_id}/views/{seq}")
async def frame_view(device_id: DeviceId, seq: Seq, redis: RedisDep) -> Response:
    """The focus view the frame came with, while the worker keeps it."""
    jpeg = await corrections.frame_view(redis=redis, device_id=device_id, seq=seq)
    if jpeg is None:
        raise ItemNotFoundError(f"the view of {device_id} frame #{seq} is not kept")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private"})


@router.post("/devices/{device_id}/corrections", response_class=HTMLResponse)
async def correct_frame(
    request: Request,
    device_id: DeviceId,
    redis: RedisDep,
    store: StoreDep,
    catalog_changed: CatalogChanged,
    ingest: IngestDep,
    user: SignedInUser,
    seq: Annotated[int, Form(ge=0)],
    verdict: Annotated[Literal["item", "not_in_catalog"], Form()],
    item_id: Annotated[str, Form()] = "",
) -> Response:
    """ "Frame ``seq`` shows item ``item_id``" (its view becomes a photo of the item), or
    "it shows something the catalog does not hold"."""
    try:
        chosen = None
        if verdict == "item":
            chosen = await run_in_threadpool(corrections.typed_item, store=store, typed=item_id)
        correction = await corrections.correct(
            ingest=ingest,
            redis=redis,
            device_id=device_id,
            seq=seq,
            item_id=chosen,
            user=user,
        )
    except (ItemNotFoundError, ViewGoneError, UploadRejectedError) as exc:
        status = 422 if isinstance(exc, UploadRejectedError) else 404
        return await _device_page(
            request, device_id, redis, store, error=str(exc), status_code=status
        )
    catalog_changed()
    return RedirectResponse(
        f"/devices/{device_id}?corrected={correction.correction_id}", status_code=303
    )


@router.post("/devices/{device_id}/corrections/{correction_id}/undo")
def undo_correction(
    device_id: DeviceId,
    correction_id: Annotated[int, Path(ge=1)],
    store: StoreDep,
    catalog_changed: CatalogChanged,
    user: SignedInUser,
) -> RedirectResponse:
    """Undo a correction of this device's frame ("not in the catalog" has no item page)."""
    corrections.undo(store=store, correction_id=correction_id, user=user, device_id=device_id)
    catalog_changed()
    return RedirectResponse(f"/devices/{device_id}?corrected={correction_id}", status_code=303)


async def _device_page(
    request: Request,
    device_id: str,
    redis: Redis,
    store: CatalogStore,
    *,
    correction: Correction | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    try:
        device = await live.get_device(redis=redis, device_id=device_id)
        records = await live.recent_records(redis=redis, device_id=device_id, limit=HISTORY_LENGTH)
        redis_error = None
    except RedisUnavailableError as exc:
        logger.warning("device page of %s without live data: %s", device_id, exc)
        device, records, redis_error = None, [], str(exc)
    return templates.TemplateResponse(
        request,
        "device.html",
        {
            "device_id": device_id,
            "device": device,
            "latest": records[0] if records else None,
            # A device sends its view once a view settles, not with every frame: the page
            # shows the newest view it has, saying so when an answer came after it.
            "viewed": next((record for record in records if record.view), None),
            "history": _runs(records),
            "history_length": HISTORY_LENGTH,
            "redis_error": redis_error,
            "events_url": request.url_for("device_events", device_id=device_id).path,
            "correction": correction,
            "corrected_item": _item_or_none(store, correction),
            "error": error,
        },
        status_code=status_code,
    )


def _runs(records: list[MatchRecord]) -> list[tuple[MatchRecord, int]]:
    """The history one line per run of frames with the same answer: the newest frame of
    each run, and how many frames it holds."""
    runs: list[tuple[MatchRecord, int]] = []
    for record in records:
        if runs and _answer(runs[-1][0]) == _answer(record):
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((record, 1))
    return runs


def _answer(record: MatchRecord) -> tuple[object, ...]:
    """What a history line says of a frame (_macros.html history_answer)."""
    top = record.matches[0] if record.matches else None
    if record.decision == "no_match" or top is None:
        return (record.decision,)
    return (record.decision, top.name, bool(top.verified))


def _item_or_none(store: CatalogStore, correction: Correction | None) -> CatalogItem | None:
    if correction is None or correction.item_id is None:
        return None
    try:
        return store.get(correction.item_id)
    except ItemNotFoundError:
        return None


@router.get("/openapi.json")
def openapi_schema(request: Request) -> JSONResponse:
    """The API's OpenAPI schema (FastAPI's own route would skip the guard)."""
    return JSONResponse(request.app.openapi())


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    """The API reference, rendered here from the schema: no scripts from a CDN."""
    return templates.TemplateResponse(request, "api_docs.html", {"schema": request.app.openapi()})


@router.get("/redoc")
def redoc() -> RedirectResponse:
    """Where FastAPI's second docs page was: the one reference page."""
    return RedirectResponse("/docs", status_code=308)
