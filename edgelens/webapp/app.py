"""The FastAPI application: one factory; the featurizer, catalog and Redis are opened once."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from edgelens import __version__
from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.notify import notify_catalog_changed
from edgelens.catalog.store import CatalogStore
from edgelens.featurizer.runtime import ConfiguredFeaturizer, Featurizer
from edgelens.settings import Settings, redact_urls, require_secrets
from edgelens.webapp import errors
from edgelens.webapp.deps import AppState, guard
from edgelens.webapp.metrics import MetricsMiddleware, WebMetrics
from edgelens.webapp.routes import (
    api,
    auth,
    catalog,
    events,
    health,
    imports,
    items,
    models,
    pages,
)
from edgelens.webapp.security import LoginThrottle, SecurityHeadersMiddleware, session_secret
from edgelens.webapp.services.accounts import AccountStore, accounts_path
from edgelens.webapp.services.imports import CatalogImports
from edgelens.webapp.services.live import LiveHub, connect
from edgelens.webapp.templating import SILENT_GLOBAL, templates

logger = logging.getLogger(__name__)

# Every router of the app; the guard dependency covers all of them.
ROUTERS = tuple(
    module.router for module in (pages, api, items, imports, events, catalog, auth, health, models)
)

STATIC_DIR = Path(__file__).parent / "static"
# Room for the multipart framing and text fields around an upload of the maximum size.
_FORM_OVERHEAD_BYTES = 64 * 1024


def create_app(settings: Settings, *, featurizer: Featurizer | None = None) -> FastAPI:
    """The dashboard configured by ``settings``.

    The featurizer is loaded once at startup unless the caller already holds one (the
    tests and an in-process demo share theirs), and again when a newly exported model
    takes the configured one's name (a rollout: uploads then get the new model's vectors).
    Redis is connected lazily, so the app starts, and its pages render, while Redis is
    down. In production mode it refuses to start without a session key and a Redis
    password.
    """
    require_secrets(settings, redis=True, web=True)
    secret = session_secret(settings)
    templates.env.globals[SILENT_GLOBAL] = settings.web.device_silent_s

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[AppState]:
        model = await run_in_threadpool(ConfiguredFeaturizer, settings, featurizer)
        store = CatalogStore(settings.catalog_url)
        redis = connect(str(settings.redis_url))
        live = LiveHub(
            redis=redis,
            max_streams=settings.web.max_streams,
            max_streams_per_client=settings.web.max_streams_per_client,
        )
        accounts = AccountStore(accounts_path(settings.data_dir))
        if not accounts.count():
            logger.warning("no admin yet: catalog changes need `edgelens web add-admin NAME`")
        logger.info(
            "dashboard ready: catalog %s (%d items), model %s, redis %s",
            redact_urls(settings.catalog_url),
            len(store),
            model.get().model_id,
            redact_urls(str(settings.redis_url)),
        )
        catalog_changed = functools.partial(
            notify_catalog_changed, store=store, redis_url=str(settings.redis_url)
        )
        catalog_imports = CatalogImports(
            store=store,
            featurizer=model.get,
            images_dir=settings.images_dir,
            recipe=CatalogRecipe(settings.catalog.views),
            staging_dir=settings.data_dir / "uploads",
            on_change=catalog_changed,
        )
        catalog_imports.start()
        live.start()  # streams wait for its subscription; pages render meanwhile
        app.state.live = live  # for a server that ends the live views as it stops
        try:
            yield {
                "settings": settings,
                "store": store,
                "featurizer": model,
                "redis": redis,
                "accounts": accounts,
                "live": live,
                "imports": catalog_imports,
                "catalog_changed": catalog_changed,
            }
        finally:
            await live.stop()
            await run_in_threadpool(catalog_imports.stop)
            await redis.aclose()
            store.close()
            accounts.close()

    app = FastAPI(
        title="edgelens dashboard",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(guard)],  # sign-in and CSRF, for every route
        # FastAPI's own schema and docs routes are outside the guard and load the docs
        # page's scripts from a CDN: routes.pages serves both, guarded, from this site.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.metrics = WebMetrics()
    app.state.login_throttle = LoginThrottle(
        per_account=settings.web.login_failures_per_account,
        per_address=settings.web.login_failures_per_address,
        window_s=settings.web.login_window_s,
    )
    # Refuses a huge upload before it is spooled, with a page a browser shows; the file's
    # own limit is checked exactly while it is staged (services.catalog).
    app.add_middleware(
        errors.BodyLimitMiddleware,
        max_bytes=settings.web.max_upload_bytes + _FORM_OVERHEAD_BYTES,
        router=app.router,
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="edgelens_session",
        max_age=settings.web.session_max_age_s,
        same_site="lax",
        https_only=settings.web.secure_cookies,
    )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(SecurityHeadersMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in ROUTERS:
        app.include_router(router)
    errors.install(app)
    return app
