"""The FastAPI application: one factory; the featurizer, catalog and Redis are opened once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from edgelens import __version__
from edgelens.catalog.store import CatalogStore
from edgelens.errors import ItemNotFoundError, RedisUnavailableError
from edgelens.featurizer.runtime import Featurizer, load_featurizer
from edgelens.settings import Settings
from edgelens.webapp.deps import AppState
from edgelens.webapp.routes import api, catalog, events, pages
from edgelens.webapp.schemas import ErrorOut
from edgelens.webapp.services.live import connect

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# Room for the multipart framing and text fields around an upload of the maximum size.
_FORM_OVERHEAD_BYTES = 64 * 1024


def create_app(settings: Settings, *, featurizer: Featurizer | None = None) -> FastAPI:
    """The dashboard configured by ``settings``.

    The featurizer is loaded once at startup unless the caller already holds one (the
    tests and an in-process demo share theirs). Redis is connected lazily, so the app
    starts, and its pages render, while Redis is down.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[AppState]:
        model = featurizer or await run_in_threadpool(load_featurizer, settings)
        store = CatalogStore(settings.catalog_db)
        redis = connect(str(settings.redis_url))
        logger.info(
            "dashboard ready: catalog %s (%d items), model %s, redis %s",
            settings.catalog_db,
            len(store),
            model.model_id,
            settings.redis_url,
        )
        try:
            yield {"settings": settings, "store": store, "featurizer": model, "redis": redis}
        finally:
            await redis.aclose()
            store.close()

    app = FastAPI(
        title="edgelens dashboard",
        version=__version__,
        lifespan=lifespan,
        # Refuses a huge upload before it is spooled; the file's own limit is checked
        # exactly while it is staged (services.catalog).
        max_body_size=settings.web.max_upload_bytes + _FORM_OVERHEAD_BYTES,
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (pages, api, events, catalog):
        app.include_router(module.router)
    app.add_exception_handler(RedisUnavailableError, _answer(503))
    app.add_exception_handler(ItemNotFoundError, _answer(404))
    return app


def _answer(status_code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """An exception handler replying ``{"detail": <the error's message>}``."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("%s %s → %d: %s", request.method, request.url.path, status_code, exc)
        return JSONResponse(ErrorOut(detail=str(exc)).model_dump(), status_code=status_code)

    return handler
