"""Health and metrics of the dashboard, for monitoring (open even when it is private)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest
from redis.exceptions import RedisError

from edgelens.webapp.deps import RedisDep, StoreDep

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz(redis: RedisDep, store: StoreDep) -> JSONResponse:
    """200 while Redis answers (live data flows), else 503; with the catalog's size."""
    try:
        redis_ok = bool(await redis.ping())
    except (RedisError, OSError):
        redis_ok = False
    body = {
        "status": "ok" if redis_ok else "unavailable",
        "redis_ok": redis_ok,
        "catalog_items": len(store),
    }
    return JSONResponse(body, status_code=200 if redis_ok else 503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )
