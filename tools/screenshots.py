"""Screenshots of the dashboard for the docs: a device page, the catalog and an item page,
on a desk (1400 px) and on a phone (400 px), written to docs/screenshots/.

The app runs for real (uvicorn in a thread) on a temporary data dir with a private Redis;
the catalog is a few of the sample photos, and one device has answered a frame that came
with its view (so the signed-in admin sees the correction form). Needs Debian's chromium
and chromedriver (`make setup`) and the exported models (data/models).

    python -m tools.screenshots [--out docs/screenshots] [--models-dir data/models]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import uvicorn

from edgelens.catalog.ingest import add_items
from edgelens.catalog.sources import collect_sources
from edgelens.catalog.store import CatalogStore
from edgelens.demo.servers import RedisServer, free_port
from edgelens.featurizer.focus import focus_view_jpeg
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import load_photo, write_sample_catalog
from edgelens.settings import VIEW_BYTES, Settings
from edgelens.testing.browser import headless_chromium, sign_in
from edgelens.webapp.app import create_app
from edgelens.webapp.services.accounts import AccountStore, accounts_path
from edgelens.wire.names import DEVICES_CHANNEL, DEVICES_KEY, matches_channel, matches_key, view_key
from edgelens.wire.records import Match, MatchRecord, Stage

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
WIDTHS = (1400, 400)  # a desk, a phone
HEIGHT = 900
ITEMS = ("astronaut", "coffee", "rocket", "chelsea", "clock", "moon", "hubble", "colorwheel")
SEEN = "astronaut"  # what the device's camera saw
DEVICE = "shelf-cam"
ADMIN, PASSWORD = "admin", "screenshots only"
WAIT_S = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    featurizer = Featurizer.from_models_dir(args.models_dir, "fp32", providers=["cpu"])
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as redis_server:
        settings = Settings(
            data_dir=Path(tmp) / "data", models_dir=args.models_dir, redis_url=redis_server.url
        )
        _fill_catalog(settings, featurizer, Path(tmp) / "samples")
        _device_answered(redis_server.url, featurizer.model_id)
        accounts = AccountStore(accounts_path(settings.data_dir))
        accounts.set_admin(username=ADMIN, password=PASSWORD)
        accounts.close()
        with _serve(settings, featurizer) as url, _chromium(Path(tmp) / "chromium") as driver:
            sign_in(driver, url, username=ADMIN, password=PASSWORD)
            pages = {
                "device": f"/devices/{DEVICE}",
                "catalog": "/catalog",
                "item": f"/catalog/items/{SEEN}",
            }
            for name, path in pages.items():
                for width in WIDTHS:
                    target = args.out / f"{name}-{width}.png"
                    _screenshot(driver, url + path, width, target)
                    logger.info("wrote %s", target)


def _fill_catalog(settings: Settings, featurizer: Featurizer, samples: Path) -> None:
    manifest = write_sample_catalog(samples)
    sources = [s for s in collect_sources([manifest]) if s.item_id in ITEMS]
    store = CatalogStore(settings.catalog_url)
    try:
        report = add_items(
            store=store, featurizer=featurizer, sources=sources, images_dir=settings.images_dir
        )
    finally:
        store.close()
    logger.info("catalog: %d items added", report.added)


def _device_answered(redis_url: str, model_id: str) -> None:
    """The device online, and its last frames answered as the worker writes them (the
    newest with its view, kept as the worker keeps it)."""
    client = redis.Redis.from_url(redis_url)
    status = {
        "device_id": DEVICE,
        "state": "online",
        "model_id": model_id,
        "provider": "CPUExecutionProvider",
        "fps": 14.8,
        "featurize_ms": 21.4,
        "dropped": 0,
        "suppressed": 37,
        "ts": time.time(),
    }
    client.hset(DEVICES_KEY, DEVICE, json.dumps(status))
    client.publish(DEVICES_CHANNEL, json.dumps(status))
    names = {"astronaut": "Astronaut portrait print", "chelsea": "Chelsea the cat poster"}
    names |= {"coffee": "Coffee cup", "rocket": "Rocket launch photo", "clock": "Wall clock"}
    answers = [("coffee", "clock"), ("rocket", "moon"), ("astronaut", "chelsea", "coffee")]
    now = time.time()
    for seq, ids in enumerate(answers, start=1):
        newest = seq == len(answers)
        matches = [
            Match(
                item_id,
                names.get(item_id, item_id.capitalize()),
                price,
                "EUR",
                True,
                0.91 - rank * 0.12,
                rank == 0 or None,
            )
            for rank, (item_id, price) in enumerate(zip(ids, (24.0, 12.5, 8.9), strict=False))
        ]
        record = MatchRecord(
            DEVICE,
            seq,
            now - (len(answers) - seq) * 4.0,
            model_id,
            38.0 + 7 * seq,
            matches,
            {"transit": 22.0, "search": 1.2},
            stage=Stage.CONFIRMED,
            view=newest,
        )
        if newest:
            view = focus_view_jpeg(load_photo(SEEN), VIEW_BYTES)
            client.set(view_key(DEVICE, seq), view)
        client.lpush(matches_key(DEVICE), record.to_json())
        client.publish(matches_channel(DEVICE), record.to_json())
    client.close()


@contextmanager
def _serve(settings: Settings, featurizer: Featurizer) -> Iterator[str]:
    config = uvicorn.Config(
        create_app(settings, featurizer=featurizer),
        host="127.0.0.1",
        port=free_port(),
        log_level="warning",
        timeout_graceful_shutdown=1,  # the page's open event stream must not hold the stop
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def _chromium(user_data_dir: Path):
    driver = headless_chromium(user_data_dir, extra_arguments=("--hide-scrollbars",))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver, url: str, width: int, target: Path) -> None:
    """The whole page at ``width``, once its stream is live and its images are in."""
    from selenium.webdriver.support.ui import WebDriverWait

    live = "const c = document.getElementById('connection');return !c || c.dataset.state === 'live'"
    loaded = "return [...document.images].every(i => !i.src || i.naturalWidth > 0)"
    driver.set_window_size(width, HEIGHT)
    driver.get(url)
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(live))
    height, chrome = driver.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
    )
    # the whole page in view (lazy images load too): the window is the page plus its frame
    driver.set_window_size(width, max(height, HEIGHT) + chrome)
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(loaded))
    time.sleep(0.3)  # painted
    driver.save_screenshot(str(target))


if __name__ == "__main__":
    main()
