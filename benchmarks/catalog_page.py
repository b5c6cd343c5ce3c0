"""The catalog page at a million items: server time of the first page, a later page and a
name search (the page before showed every item at once: not servable at this size).

A catalog of N items with made-up shop names (brand, product, variant, size) is written
straight into a catalog database; the dashboard app runs in-process (Starlette's test
client: routing, the database and the template, no network), asked by a signed-out visitor.
Each figure is the p50/p99 of the server time over the given number of requests.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import common_arguments, publish
from edgelens.catalog.models import CatalogItem
from edgelens.catalog.store import CatalogStore
from edgelens.featurizer.runtime import Featurizer
from edgelens.settings import Settings

logger = logging.getLogger(__name__)
BRANDS = ["Alpen", "Nordhof", "Sunfield", "Marisol", "Bergmann", "Lumen", "Okta", "Frisia"]
PRODUCTS = ["oat drink", "yoghurt", "muesli", "crispbread", "coffee", "tea", "juice", "soap"]
RARE = "zanzibar"
VARIANTS = ["vanilla", "strawberry", "natural", "chocolate", "light", "organic", "lemon", "mint"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="per figure")
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from fastapi.testclient import TestClient

    from edgelens.webapp.app import create_app

    featurizer = Featurizer.from_models_dir(args.models_dir, "fp32", "rgem", providers=["cpu"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EDGELENS_DATA_DIR"] = tmp
        settings = Settings()
        started = time.perf_counter()
        ids = _fill(CatalogStore(settings.catalog_url), args.items)
        filled_s = time.perf_counter() - started
        size_mb = Path(settings.catalog_url).stat().st_size / 1e6
        with TestClient(create_app(settings, featurizer=featurizer)) as client:
            later = ids[int(len(ids) * 0.9)]
            asks = {
                "first page": "/catalog",
                "a later page (90% in)": f"/catalog?after={later}",
                "name search, common word": "/catalog?q=yoghurt",
                "name search, two words": "/catalog?q=alpen+vanil",
                "name search, rare word": f"/catalog?q={RARE}",
                "available only, later page": f"/catalog?available=no&after={later}",
                "id search": f"/catalog?q={ids[len(ids) // 2][:9]}",
            }
            for name, url in asks.items():
                rows.append((name, url, *_timed(client, url, args.requests)))
    lines = [
        f"{args.items:,} items written in {filled_s:.0f} s ({size_mb:,.0f} MB of catalog "
        "database with its name index); 48 items a page, keyset paging by id, names "
        "searched through SQLite's full-text index (every word a prefix). Server time per "
        f"request over {args.requests} requests, in-process (Starlette's test client), a "
        "signed-out visitor.",
        "",
        "| request | items shown | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {name} | {shown} | {p50:.1f} | {p99:.1f} |" for name, _, p50, p99, shown in rows),
    ]
    body = "\n".join(lines)
    publish(
        "catalog-page", "## The catalog page at a million items\n\n" + body, write=not args.no_write
    )


def _fill(store: CatalogStore, count: int) -> list[str]:
    rng = np.random.default_rng(7)
    ids = [f"sku-{n:07d}" for n in range(count)]
    chunk = 50_000
    for start in range(0, count, chunk):
        with store.transaction() as write:
            for item_id in ids[start : start + chunk]:
                brand, product, variant = (
                    BRANDS[rng.integers(len(BRANDS))],
                    PRODUCTS[rng.integers(len(PRODUCTS))],
                    VARIANTS[rng.integers(len(VARIANTS))],
                )
                name = f"{brand} {product} {variant} {int(rng.integers(1, 20)) * 50} g"
                if item_id == ids[count // 3]:
                    name = f"{RARE.capitalize()} spice mix 100 g"  # the one item with this word
                sha = f"{int(item_id[4:]):064x}"
                write.upsert(
                    CatalogItem(
                        item_id,
                        name,
                        float(rng.integers(50, 2000)) / 100,
                        "EUR",
                        bool(rng.random() < 0.9),
                        sha,
                        f"{sha[:2]}/{sha}.jpg",
                    ),
                )
        logger.warning("%d items written", min(start + chunk, count))
    store.close()
    return ids


def _timed(client, url: str, requests: int) -> tuple[float, float, int]:
    samples = []
    shown = 0
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        shown = response.text.count('class="card item"')
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return statistics.median(samples), p99, shown


if __name__ == "__main__":
    main()
