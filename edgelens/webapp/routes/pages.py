"""The dashboard and device pages: rendered from Redis, then kept live by SSE (live.js);
and the API's schema and reference page, under the same guard as everything else."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from edgelens.webapp.deps import DeviceId, RedisDep
from edgelens.webapp.services import live
from edgelens.webapp.templating import templates

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

# Frames listed under the latest one on a device page.
HISTORY_LENGTH = 20


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, redis: RedisDep) -> HTMLResponse:
    try:
        devices, redis_error = await live.list_devices(redis=redis), None
    except live.RedisUnavailableError as exc:
        logger.warning("dashboard without live data: %s", exc)
        devices, redis_error = [], str(exc)
    return templates.TemplateResponse(
        request,
        "dashboard.html",
        {
            "devices": devices,
            "redis_error": redis_error,
            "events_url": request.url_for("devices_events").path,
        },
    )


@router.get("/devices/{device_id}", response_class=HTMLResponse)
async def device_page(request: Request, device_id: DeviceId, redis: RedisDep) -> HTMLResponse:
    try:
        device = await live.get_device(redis=redis, device_id=device_id)
        records = await live.recent_records(redis=redis, device_id=device_id, limit=HISTORY_LENGTH)
        redis_error = None
    except live.RedisUnavailableError as exc:
        logger.warning("device page of %s without live data: %s", device_id, exc)
        device, records, redis_error = None, [], str(exc)
    return templates.TemplateResponse(
        request,
        "device.html",
        {
            "device_id": device_id,
            "device": device,
            "latest": records[0] if records else None,
            "history": records,
            "history_length": HISTORY_LENGTH,
            "redis_error": redis_error,
            "events_url": request.url_for("device_events", device_id=device_id).path,
        },
    )


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
