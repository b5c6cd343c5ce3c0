"""The catalog survives `edgelens catalog add` killed (SIGKILL) halfway through a bulk import."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edgelens.catalog.augment import DEFAULT_RECIPE
from edgelens.catalog.store import CatalogStore
from edgelens.samples.photos import load_photo

EDGELENS = Path(sys.executable).with_name("edgelens")
ITEMS = 24


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "import"
    folder.mkdir()
    rng = np.random.default_rng(0)
    base = cv2.resize(load_photo("coffee"), (320, 240))
    for i in range(ITEMS):  # distinct bytes, so each image is featurized
        noisy = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"item-{i:02d}.png"), noisy)
    return folder


def _count(location: str) -> int:
    """Committed items, read as another process would (0 before the catalog exists)."""
    if "://" not in location and not Path(location).exists():
        return 0
    store = CatalogStore(location)
    try:
        return len(store.items())
    finally:
        store.close()


def test_a_bulk_import_killed_midway_leaves_a_consistent_catalog(settings, featurizer, tmp_path):
    folder = _folder(tmp_path)
    env = {**os.environ}
    command = [str(EDGELENS), "catalog", "add", str(folder)]
    importer = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while _count(settings.catalog_url) < 4:
        assert importer.poll() is None and time.monotonic() < deadline, "import did not progress"
        time.sleep(0.05)
    importer.send_signal(signal.SIGKILL)
    importer.wait()

    if "://" not in settings.catalog_url:
        with sqlite3.connect(settings.catalog_url) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = CatalogStore(settings.catalog_url)
    try:
        items = {item.item_id for item in store.items()}
        assert 4 <= len(items) < ITEMS, "killed midway"
        with_vectors, _ = store.vectors(featurizer.model_id, DEFAULT_RECIPE.recipe_id)
        assert {item.item_id for item in with_vectors} == items, "no item without its vectors"
        logged = {item_id for _, item_id, _ in store.changes_since(0)}
        assert logged == items, "the change log holds exactly the committed items"
    finally:
        store.close()

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    store = CatalogStore(settings.catalog_url)
    try:
        assert len(store.items()) == ITEMS
    finally:
        store.close()
