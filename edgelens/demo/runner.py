"""``edgelens demo``: every part of the product on one machine, started and stopped together.

Order of start: redis-server and mosquitto (private, free loopback ports) → the
demo catalog (cached, so a second start featurizes nothing) → the camera video →
worker → web app → device. Stop runs in reverse, each part logging its exit.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

import uvicorn
from pydantic import AnyUrl

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.ingest import add_items
from edgelens.catalog.models import IngestReport
from edgelens.catalog.sources import collect_sources
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.worker import Worker
from edgelens.demo.servers import MosquittoServer, RedisServer, ServerError, free_port
from edgelens.demo.video import render_camera_video
from edgelens.device.loop import DeviceLoop
from edgelens.evaluation.sample_photos import SAMPLE_PHOTOS, load_photo, write_sample_catalog
from edgelens.featurizer.runtime import Featurizer, load_featurizer
from edgelens.settings import Settings
from edgelens.webapp.app import create_app
from edgelens.webapp.services.accounts import AccountStore, accounts_path

logger = logging.getLogger(__name__)

DEMO_ITEMS = ("coffee", "chelsea", "rocket", "motorcycle", "astronaut", "clock", "coins")


def run_demo(
    settings: Settings,
    *,
    stop: threading.Event,
    source: str | None = None,
    on_ready: Callable[[str], None] = lambda url: None,
) -> None:
    """Run until ``stop`` is set; ``on_ready`` receives the dashboard URL."""
    workdir = settings.data_dir / "demo"
    with (
        RedisServer(workdir=workdir / "redis") as redis_server,
        MosquittoServer(workdir=workdir / "mosquitto") as broker,
    ):
        settings = settings.model_copy(
            update={"redis_url": AnyUrl(redis_server.url), "mqtt_url": AnyUrl(broker.url)}
        )
        featurizer = load_featurizer(settings)
        report = build_sample_catalog(settings, featurizer)
        logger.info(
            "demo catalog: %d items (%d featurized, %d from cache)",
            report.added + report.updated + report.unchanged,
            report.featurized,
            report.cached,
        )
        _demo_admin(settings)
        video = source or str(camera_video(workdir))
        worker = Worker(settings)
        worker.start()
        web = WebServer(settings, featurizer)
        web.start()
        device = settings.device.model_copy(update={"source": video, "loop": source is None})
        device_loop = DeviceLoop(
            device=device,
            featurizer=featurizer,
            mqtt_url=str(settings.mqtt_url),
            mqtt_tls=settings.mqtt_tls,
            stop=stop,
        )
        device_thread = threading.Thread(target=device_loop.run, name="demo-device", daemon=True)
        device_thread.start()
        on_ready(f"{web.url}/devices/{device.device_id}")
        try:
            stop.wait()
        finally:
            stop.set()
            device_thread.join(timeout=10)
            web.stop()
            worker.stop()


def _demo_admin(settings: Settings) -> None:
    """The first run makes an admin "demo" with a random password, so the catalog can be
    edited from the dashboard; the password is logged once, never stored in clear."""
    accounts = AccountStore(accounts_path(settings.data_dir))
    try:
        if accounts.count():
            return
        password = secrets.token_urlsafe(12)
        accounts.set_admin(username="demo", password=password)
    finally:
        accounts.close()
    logger.warning("dashboard admin created: sign in as demo / %s to edit the catalog", password)


def build_sample_catalog(
    settings: Settings, featurizer: Featurizer, *, item_ids: Collection[str] | None = None
) -> IngestReport:
    """Put the scikit-image sample photos (or those of ``item_ids``) into the catalog,
    as `edgelens catalog add` would; the demo's, the tests' and the benchmarks' catalog."""
    manifest = write_sample_catalog(settings.data_dir / "samples")
    sources = [s for s in collect_sources([manifest]) if item_ids is None or s.item_id in item_ids]
    store = CatalogStore(settings.catalog_db)
    try:
        return add_items(
            store=store,
            featurizer=featurizer,
            sources=sources,
            images_dir=settings.images_dir,
            recipe=CatalogRecipe(settings.catalog.views),
        )
    finally:
        store.close()


def camera_video(workdir: Path) -> Path:
    path = workdir / "camera.avi"
    if not path.exists():
        loaders = {p.item_id: p.loader for p in SAMPLE_PHOTOS}
        render_camera_video(path, [load_photo(loaders[i]) for i in DEMO_ITEMS], seed=11)
        logger.info("rendered the demo camera video: %s", path)
    return path


class WebServer:
    """uvicorn in a thread, stopped through its should_exit flag."""

    def __init__(self, settings: Settings, featurizer: Featurizer) -> None:
        port = settings.web.port
        if port == 0 or not _port_free(settings.web.host, port):
            port = free_port()  # 8000 taken (or 0 asked for): any free port will do
        config = uvicorn.Config(
            create_app(settings, featurizer=featurizer),
            host=settings.web.host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=1,  # open event streams must not hold the stop
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="demo-web", daemon=True)
        self.url = f"http://{settings.web.host}:{port}"

    def start(self, timeout: float = 20.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServerError(f"the web app did not start on {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        logger.info("web app stopped")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
