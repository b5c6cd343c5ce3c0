"""The catalog's tests run on both engines: the embedded SQLite and a real PostgreSQL."""

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store(catalog_location):
    from edgelens.catalog.store import CatalogStore

    catalog = CatalogStore(catalog_location)
    yield catalog
    catalog.close()
