"""A catalog of the sample photos plus real redis-server and mosquitto for the worker."""

from __future__ import annotations

import pytest
from pydantic import AnyUrl

from edgelens.catalog.ingest import add_items
from edgelens.catalog.sources import collect_sources
from edgelens.catalog.store import CatalogStore


@pytest.fixture
def live_settings(settings, featurizer, sample_catalog, redis_server, mosquitto_server):
    store = CatalogStore(settings.catalog_db)
    add_items(
        store=store,
        featurizer=featurizer,
        sources=collect_sources([sample_catalog]),
        images_dir=settings.images_dir,
    )
    store.close()
    return settings.model_copy(
        update={"redis_url": AnyUrl(redis_server.url), "mqtt_url": AnyUrl(mosquitto_server.url)}
    )
