"""Shared fixtures: the exported models (built once), real photos, isolated settings."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import get_args

# anyio's pytest plugin makes pytest rewrite anyio's modules as they are imported, and
# CPython 3.11's parser can fail ("AST constructor recursion depth mismatch") when that
# happens in a web server's thread while another thread parses: Starlette's first file
# response imports anyio's file module lazily, so it is imported here, before any thread.
import anyio._core._fileio  # noqa: F401
import numpy as np
import pytest
from pydantic import AnyUrl

from edgelens.evaluation.real_views import RealViewSet, fetch_real_views
from edgelens.featurizer.manifest import artefact_paths
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import load_photo, write_sample_catalog
from edgelens.settings import Precision, Settings

REPO = Path(__file__).resolve().parent.parent
PRECISIONS = get_args(Precision)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The models `make test` exported; exported here if a run starts without them."""
    directory = Path(os.environ.get("EDGELENS_DATA_DIR", REPO / "data")).resolve() / "models"
    if not all(artefact_paths(directory, p)[0].is_file() for p in PRECISIONS):
        from edgelens.models.export import export_models

        export_models(directory, PRECISIONS)
    return directory


@pytest.fixture(scope="session")
def real_views() -> RealViewSet:
    """The real-view set `make test` fetched; fetched here if a run starts without it."""
    data_dir = Path(os.environ.get("EDGELENS_DATA_DIR", REPO / "data")).resolve()
    return fetch_real_views(data_dir / "real-views")


@pytest.fixture(scope="session")
def featurizers(models_dir: Path) -> dict[str, Featurizer]:
    return {p: Featurizer.from_models_dir(models_dir, p, providers=["cpu"]) for p in PRECISIONS}


@pytest.fixture(scope="session")
def featurizer(featurizers: dict[str, Featurizer]) -> Featurizer:
    return featurizers["fp32"]


@pytest.fixture(scope="session")
def sample_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scikit-image photos as <item_id>.png plus catalog.json (returned)."""
    return write_sample_catalog(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    return load_photo("chelsea")


@pytest.fixture(scope="session")
def postgres_server():
    """One private PostgreSQL for the run (as an unprivileged user); a database per test."""
    from edgelens.testing.postgres import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture
def catalog_backend() -> str:
    """The catalog's engine; test modules that run on both parametrise this."""
    return "sqlite"


@pytest.fixture
def catalog_location(
    tmp_path: Path, catalog_backend: str, request: pytest.FixtureRequest
) -> str | Path:
    """A new, empty catalog of ``catalog_backend``: a SQLite file or a PostgreSQL database."""
    if catalog_backend == "postgresql":
        return request.getfixturevalue("postgres_server").new_database()
    return tmp_path / "catalog.sqlite3"


def _without_edgelens_env(patch: pytest.MonkeyPatch) -> None:
    """No EDGELENS_* variable of the caller's shell reaches the settings under test."""
    for key in list(os.environ):
        if key.startswith("EDGELENS_"):
            patch.delenv(key)


@pytest.fixture
def settings(
    tmp_path: Path,
    models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    catalog_backend: str,
    request: pytest.FixtureRequest,
) -> Settings:
    """Settings with a private data dir, catalog and the shared models; also exported as
    env vars."""
    _without_edgelens_env(monkeypatch)
    monkeypatch.setenv("EDGELENS_DATA_DIR", str(tmp_path / "data"))
    if catalog_backend == "postgresql":
        url = request.getfixturevalue("postgres_server").new_database()
        monkeypatch.setenv("EDGELENS_CATALOG__URL", url)
    monkeypatch.setenv("EDGELENS_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("EDGELENS_FEATURIZER__PROVIDERS", '["cpu"]')
    monkeypatch.setenv("EDGELENS_WORKER__METRICS_PORT", "0")  # tests run workers side by side
    return Settings()


@pytest.fixture
def redis_server():
    """A private redis-server on a free loopback port, stopped after the test."""
    from edgelens.demo.servers import RedisServer

    with RedisServer() as server:
        yield server


@pytest.fixture
def mosquitto_server():
    """A private mosquitto (foreground, supervised) on a free loopback port."""
    from edgelens.demo.servers import MosquittoServer

    with MosquittoServer() as server:
        yield server


@pytest.fixture(scope="session")
def sample_catalog_template(tmp_path_factory: pytest.TempPathFactory, featurizer) -> Settings:
    """The sample photos added once (as `edgelens catalog add` would) to a SQLite catalog
    whose data dir the live tests copy: featurizing them is most of a worker test's set-up."""
    from edgelens.demo.runner import build_sample_catalog

    data_dir = tmp_path_factory.mktemp("sample-catalog")
    with pytest.MonkeyPatch.context() as patch:
        _without_edgelens_env(patch)
        patch.setenv("EDGELENS_DATA_DIR", str(data_dir))
        template = Settings()
    build_sample_catalog(template, featurizer)
    return template


@pytest.fixture
def sample_settings(settings: Settings, sample_catalog_template: Settings) -> Settings:
    """``settings`` with the sample photos in its catalog (of either engine): the
    template's rows through the product's own copy, its images and sample photos beside."""
    from edgelens.catalog.migrate import copy_catalog
    from edgelens.catalog.store import CatalogStore

    template = sample_catalog_template
    source, target = CatalogStore(template.catalog_url), CatalogStore(settings.catalog_url)
    try:
        copy_catalog(source=source, target=target)
    finally:
        source.close()
        target.close()
    for folder in (template.images_dir, template.data_dir / "samples"):
        shutil.copytree(folder, settings.data_dir / folder.relative_to(template.data_dir))
    return settings


@pytest.fixture
def live_settings(sample_settings, redis_server, mosquitto_server):
    """Settings for a worker: the sample photos in the catalog, real Redis and mosquitto."""
    return sample_settings.model_copy(
        update={"redis_url": AnyUrl(redis_server.url), "mqtt_url": AnyUrl(mosquitto_server.url)}
    )


@pytest.fixture(scope="session")
def png_bomb() -> bytes:
    """A valid ~100 KB PNG that decodes to 10,000 x 10,000 pixels (300 MB as BGR)."""
    width = height = 10_000

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    packer = zlib.compressobj(9)
    row = b"\x00" + bytes(width)  # filter byte + one grey row
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
