"""Clustered unit vectors and catalogs of them: the approximate index's tests build their
indexes from these (vectors around cluster centres in a low-rank subspace, as real
embeddings lie, not uniform noise)."""

from __future__ import annotations

import numpy as np

from edgelens.catalog.models import CatalogItem
from edgelens.search.ann import AnnConfig, AnnIndex
from edgelens.search.exact import ExactIndex

DIM = 64
# Small exact_rows and scan_rows, so each of the three paths (IVF cells, scan of the
# passing rows, exact) answers some of the queries below.
CONFIG = AnnConfig(reduced_dim=32, nprobe=8, exact_rows=60, scan_rows=300, rerank=60)


def clustered(n: int, rng: np.random.Generator, clusters: int = 100) -> np.ndarray:
    """Unit vectors around cluster centres in a low-rank subspace, like real embeddings."""
    basis = np.linalg.qr(rng.normal(size=(DIM, 40)))[0].T
    centres = rng.normal(size=(clusters, 40)) * np.linspace(2.0, 0.2, 40)
    points = centres[rng.integers(0, clusters, n)] + 0.4 * rng.normal(size=(n, 40))
    vectors = points @ basis + 0.05 * rng.normal(size=(n, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def catalog(n: int, prefix: str = "item") -> list[CatalogItem]:
    return [
        CatalogItem(
            f"{prefix}-{i}",
            f"Item {i}",
            None if i % 10 == 9 else float(i % 100),
            "EUR",
            i % 3 != 0,
            "",
            "",
        )
        for i in range(n)
    ]


def build(n: int = 4000, seed: int = 0) -> tuple[AnnIndex, ExactIndex, np.ndarray]:
    rng = np.random.default_rng(seed)
    items, vectors = catalog(n), clustered(n, rng)
    exact = ExactIndex("model-a", DIM)
    exact.upsert(items, list(vectors))
    ann = AnnIndex.build(model_id="model-a", items=items, vectors=list(vectors), config=CONFIG)
    return ann, exact, clustered(50, rng)
