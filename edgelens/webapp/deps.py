"""What routes depend on, as ``Annotated`` types; the lifespan puts the objects in the state.

Routes declare ``store: StoreDep`` and never reach into ``app.state`` themselves, so a
test or another app can provide different objects through the lifespan.
"""

from __future__ import annotations

from typing import Annotated, TypedDict

from fastapi import Depends, Path, Request
from redis.asyncio import Redis

from edgelens.catalog.store import CatalogStore
from edgelens.featurizer.runtime import Featurizer
from edgelens.settings import Settings
from edgelens.wire.names import DEVICE_ID_PATTERN


class AppState(TypedDict):
    """What the lifespan opens once and every request shares."""

    settings: Settings
    store: CatalogStore
    featurizer: Featurizer
    redis: Redis


def get_settings(request: Request) -> Settings:
    return request.state.settings


def get_store(request: Request) -> CatalogStore:
    return request.state.store


def get_featurizer(request: Request) -> Featurizer:
    return request.state.featurizer


def get_redis(request: Request) -> Redis:
    return request.state.redis


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[CatalogStore, Depends(get_store)]
FeaturizerDep = Annotated[Featurizer, Depends(get_featurizer)]
RedisDep = Annotated[Redis, Depends(get_redis)]
# Device ids go into Redis keys and channels, so anything else is refused up front.
DeviceId = Annotated[str, Path(pattern=DEVICE_ID_PATTERN.pattern, description="The device id.")]
