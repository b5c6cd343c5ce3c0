"""Shared by the load benchmarks: a catalog index grown from real embeddings, worker
processes, and Redis-side counting of matched records."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np
import redis

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.models import CatalogItem
from edgelens.catalog.store import CatalogStore
from edgelens.featurizer import local_features
from edgelens.featurizer.runtime import Featurizer
from edgelens.search.ann import AnnIndex
from edgelens.search.bench import VectorModel, real_embeddings, synthetic_catalog
from edgelens.search.persist import save_index
from edgelens.settings import DeviceSettings
from edgelens.wire.features import FeatureMessage, WireDtype, encode

# ``python -m edgelens`` rather than the console script: runs from a checkout too.
EDGELENS = [sys.executable, "-m", "edgelens"]

# How a device's vectors travel by default: the benchmarks' messages go as devices send them.
WIRE = WireDtype.parse(DeviceSettings().wire_dtype)


def prepare_catalog(
    featurizer: Featurizer,
    *,
    items: int,
    queries: int,
    data_dir: Path,
    device_ids: list[str],
    photos: Sequence[np.ndarray] = (),
) -> list[bytes]:
    """Save an ANN index of ``items`` catalog items (grown from real embeddings, with the
    recipe's vectors per item) where workers load it from ``data_dir``; return encoded
    query messages of fresh views of catalog products in the device's wire dtype (WIRE), one
    per device in turn.
    With ``photos``, the items are also catalog rows whose photos' keypoints are those
    photos' in turn, so stage two verifies against real keypoints."""
    rng = np.random.default_rng(0)
    labels, real = real_embeddings(featurizer, views=12, seed=50)
    model = VectorModel.fit(real, labels)
    item_ids, vectors, products = synthetic_catalog(model, items, 10, rng)
    views = CatalogRecipe().views
    per_item = [
        np.concatenate([v[None], model.views(np.repeat(c[None], views - 1, 0), rng)])
        for v, c in zip(
            vectors, products[rng.integers(0, len(products), len(item_ids))], strict=True
        )
    ]
    index = AnnIndex.build(model_id=featurizer.model_id, items=item_ids, vectors=per_item)
    save_index(
        index,
        data_dir / "index" / f"{featurizer.model_id}-{CatalogRecipe().recipe_id}.npz",
        catalog_version=str(_catalog_rows(data_dir, item_ids, photos)),
    )
    views_of_products = model.views(products[rng.integers(0, len(products), queries)], rng)
    return [
        encode(
            FeatureMessage(device_ids[i % len(device_ids)], i, 0.0, featurizer.model_id, query),
            WIRE,
        )
        for i, query in enumerate(views_of_products)
    ]


def _catalog_rows(
    data_dir: Path, items: Sequence[CatalogItem], photos: Sequence[np.ndarray]
) -> int:
    """Catalog rows for ``items`` whose photos' keypoints are ``photos``' in turn (as the
    catalog stores them); returns the catalog change the index then reflects."""
    if not photos:
        return 0
    shas = [hashlib.sha256(photo.tobytes()).hexdigest() for photo in photos]
    store = CatalogStore(data_dir / "catalog.sqlite3")
    with store.transaction() as write:
        for sha, photo in zip(shas, photos, strict=True):
            write.put_local_features(
                sha, local_features.METHOD_ID, local_features.catalog_local_features(photo)
            )
        for n, item in enumerate(items):
            sha = shas[n % len(shas)]
            write.upsert(dataclasses.replace(item, image_sha256=sha, image_file=sha))
    change = store.last_change
    store.close()
    return change


def worker_env(*, data_dir: Path, models_dir: Path, redis_url: str, mqtt_url: str) -> dict:
    return {
        **os.environ,
        "EDGELENS_DATA_DIR": str(data_dir),
        "EDGELENS_MODELS_DIR": str(models_dir.resolve()),
        "EDGELENS_REDIS_URL": redis_url,
        "EDGELENS_MQTT_URL": mqtt_url,
        "EDGELENS_SEARCH__BACKEND": "ann",
        "EDGELENS_LOG_LEVEL": "WARNING",
        "EDGELENS_WORKER__METRICS_PORT": "0",
    }


@contextlib.contextmanager
def worker_processes(
    envs: list[dict], *, cores: Sequence[int] = ()
) -> Iterator[list[subprocess.Popen]]:
    """One real ``edgelens cloud run`` process per environment, terminated on exit; with
    ``cores``, each held to those CPU cores (taskset)."""
    pin = ["taskset", "-c", ",".join(map(str, cores))] if cores else []
    procs = [
        subprocess.Popen([*pin, *EDGELENS, "cloud", "run"], env=env, stderr=subprocess.DEVNULL)
        for env in envs
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


class LpushCounter:
    """Matched records counted by Redis itself (its LPUSH calls), so counting costs the
    machine nothing while the workers run."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)

    @property
    def count(self) -> int:
        stats = self._client.info("commandstats")
        return int(stats.get("cmdstat_lpush", {}).get("calls", 0))

    def close(self) -> None:
        self._client.close()


def resident_bytes(pid: int) -> int:
    """A process's resident memory now (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Cores each named group of processes keeps busy between :meth:`start` and :meth:`stop`."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = groups
        self._start: dict[str, float] = {}
        self._started = 0.0

    def _now(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self._groups.items()}

    def start(self) -> None:
        self._start, self._started = self._now(), time.monotonic()

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._started
        return {name: (used - self._start[name]) / elapsed for name, used in self._now().items()}


def wait_healthy(ports: list[int]) -> None:
    """Until each worker's metrics port answers /healthz (a worker loads its index first)."""
    deadline = time.monotonic() + 180
    http = httpx.Client(trust_env=False, timeout=2)
    for port in ports:
        while True:
            try:
                if http.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker on metrics port {port} never became healthy")
            time.sleep(0.2)
