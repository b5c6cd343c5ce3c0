"""What routes depend on, as ``Annotated`` types; the lifespan puts the objects in the state.

Routes declare ``store: StoreDep`` and never reach into ``app.state`` themselves, so a
test or another app can provide different objects through the lifespan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, TypedDict

from fastapi import Depends, Path, Request
from redis.asyncio import Redis

from edgelens.catalog.models import ITEM_ID_PATTERN, PHOTO_ID_PATTERN
from edgelens.catalog.store import CatalogStore
from edgelens.errors import CsrfError, NotSignedInError, RedisUnavailableError
from edgelens.featurizer.runtime import ConfiguredFeaturizer
from edgelens.settings import Settings
from edgelens.webapp.security import new_csrf_token, tokens_match
from edgelens.webapp.services.accounts import AccountStore
from edgelens.webapp.services.catalog import Ingest
from edgelens.webapp.services.imports import CatalogImports
from edgelens.webapp.services.live import LiveHub
from edgelens.webapp.services.rollout import rollout_under_way
from edgelens.wire.names import DEVICE_ID_PATTERN

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Reachable without signing in even when the dashboard is private: the sign-in page
# itself, the page assets, and what monitoring scrapes.
# The model downloads check a device's own credentials instead (routes.models).
OPEN_PATHS = ("/login", "/static/", "/healthz", "/metrics", "/models/")


class AppState(TypedDict):
    """What the lifespan opens once and every request shares."""

    settings: Settings
    store: CatalogStore
    featurizer: ConfiguredFeaturizer
    redis: Redis
    accounts: AccountStore
    live: LiveHub
    imports: CatalogImports
    catalog_changed: Callable[[], bool]  # tells workers (edgelens.catalog.notify)


def get_settings(request: Request) -> Settings:
    return request.state.settings


def get_store(request: Request) -> CatalogStore:
    return request.state.store


async def get_ingest(request: Request) -> Ingest:
    """What an uploaded photo is imported with, as the settings say; during a rollout also
    the model it moves the fleet from, so the devices still running it find the photo."""
    state = request.state
    featurizer = state.featurizer.get()
    try:
        rollout = await rollout_under_way(redis=state.redis)
    except RedisUnavailableError as exc:
        logger.warning("rollout unknown (%s): featurizing with %s only", exc, featurizer.model_id)
        rollout = None
    previous = state.featurizer.previous(rollout.from_model) if rollout is not None else None
    return Ingest.from_settings(
        store=state.store,
        featurizer=featurizer,
        settings=state.settings,
        also=(previous,) if previous is not None else (),
    )


def get_redis(request: Request) -> Redis:
    return request.state.redis


def get_accounts(request: Request) -> AccountStore:
    return request.state.accounts


def get_live(request: Request) -> LiveHub:
    return request.state.live


def get_imports(request: Request) -> CatalogImports:
    return request.state.imports


def get_catalog_changed(request: Request) -> Callable[[], bool]:
    """What a route calls after it changed the catalog, so workers apply the change at
    once rather than at their next look at the change log."""
    return request.state.catalog_changed


def client_address(request: Request) -> str:
    """Who is asking, as the server saw it: the peer, or the forwarded address where
    uvicorn trusts the proxy in front."""
    return request.client.host if request.client else "unknown"


def signed_in_user(request: Request) -> str | None:
    """The session's admin, while the session is current: signing out or a new password
    changes the account's session version, and a session still carrying an older one (a
    cookie copied before) is emptied here."""
    user = request.session.get("user")
    if user is None:
        return None
    if request.session.get("session_version") != request.state.accounts.session_version(user):
        request.session.clear()
        return None
    return user


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on the first request of a session."""
    token = request.session.get("csrf")
    if token is None:
        token = request.session["csrf"] = new_csrf_token()
    return token


def admin(request: Request) -> str:
    """The signed-in admin a change is made by (the guard has let only such requests
    change anything)."""
    user = signed_in_user(request)
    if user is None:
        raise NotSignedInError("this needs a signed-in admin")
    return user


async def guard(request: Request) -> None:
    """Applied to every route: no route can forget it.

    Every state-changing request needs a signed-in admin (except signing in) and the
    session's CSRF token, as the ``csrf_token`` form field or the ``X-CSRF-Token``
    header. Reading needs a signed-in admin only when the dashboard is private.
    """
    path = request.url.path
    user = signed_in_user(request)  # first: an ended session's CSRF token goes with it
    expected = csrf_token(request)
    if request.method in SAFE_METHODS:
        public = request.state.settings.web.public_dashboard
        if not (public or user or path.startswith(OPEN_PATHS)):
            raise NotSignedInError("this dashboard is private: sign in first")
        return
    if user is None and path != "/login":
        raise NotSignedInError("changing the catalog needs a signed-in admin")
    sent = request.headers.get("x-csrf-token")
    if sent is None and "form" in request.headers.get("content-type", ""):
        sent = (await request.form()).get("csrf_token")
    if not tokens_match(sent if isinstance(sent, str) else None, expected):
        raise CsrfError("missing or wrong CSRF token: reload the page and try again")


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[CatalogStore, Depends(get_store)]
IngestDep = Annotated[Ingest, Depends(get_ingest)]
RedisDep = Annotated[Redis, Depends(get_redis)]
AccountsDep = Annotated[AccountStore, Depends(get_accounts)]
LiveDep = Annotated[LiveHub, Depends(get_live)]
ImportsDep = Annotated[CatalogImports, Depends(get_imports)]
CatalogChanged = Annotated[Callable[[], bool], Depends(get_catalog_changed)]
SignedInUser = Annotated[str, Depends(admin)]
ClientAddress = Annotated[str, Depends(client_address)]
# Device ids go into Redis keys and channels, so anything else is refused up front.
DeviceId = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, description="The device id.")]
ItemId = Annotated[str, Path(pattern=ITEM_ID_PATTERN, description="The catalog item id.")]
Seq = Annotated[int, Path(ge=0, lt=2**53, description="The device's frame counter.")]
PhotoId = Annotated[str, Path(pattern=PHOTO_ID_PATTERN, description="The photo's sha256.")]
