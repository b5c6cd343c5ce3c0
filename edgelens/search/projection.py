"""A linear projection of one model's embeddings to fewer dimensions, fitted on the catalog.

The approximate index shortlists candidates in the reduced space (a 1280-d scan
is memory-bandwidth bound; a 256-d one moves five times fewer bytes) and then
re-ranks them with the full vectors. Cosine scores are inner products, so the
basis is the top eigenvectors of the uncentred second-moment matrix: that is the
rank-r map preserving inner products best in the least-squares sense.

A projection only means something for the model whose vectors it was fitted on,
so it carries that model id, and its ``version`` hashes the basis itself so an
index built with one fit is never searched with another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from edgelens.errors import SearchError


@dataclass(frozen=True)
class Projection:
    """``reduce(x) = x @ basis.T``; ``basis`` has orthonormal rows, strongest first."""

    model_id: str
    basis: np.ndarray  # (reduced_dim, dim) float32
    explained: float  # share of the fitted vectors' energy the basis keeps

    @property
    def dim(self) -> int:
        return int(self.basis.shape[1])

    @property
    def reduced_dim(self) -> int:
        return int(self.basis.shape[0])

    @property
    def version(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.basis).tobytes()).hexdigest()
        return f"{self.model_id}/ip{self.reduced_dim}-{digest[:12]}"

    @classmethod
    def fit(
        cls,
        vectors: np.ndarray,
        *,
        model_id: str,
        reduced_dim: int,
        max_samples: int = 100_000,
        seed: int = 0,
    ) -> Projection:
        """Fit on (a seeded sample of at most ``max_samples`` of) ``vectors``; deterministic."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] == 0:
            raise SearchError(f"cannot fit a projection on vectors of shape {vectors.shape}")
        dim = vectors.shape[1]
        if not 1 <= reduced_dim <= dim:
            raise SearchError(f"reduced_dim must be in [1, {dim}], got {reduced_dim}")
        if vectors.shape[0] > max_samples:
            rows = np.random.default_rng(seed).choice(vectors.shape[0], max_samples, replace=False)
            vectors = vectors[np.sort(rows)]
        # float32 BLAS for the big product (it dominates the build); float64 for eigh.
        moment = (vectors.T @ vectors).astype(np.float64)
        energy, eigvecs = np.linalg.eigh(moment)  # ascending
        top = eigvecs[:, ::-1][:, :reduced_dim].T
        # An eigenvector's sign is arbitrary; fixing it makes the fit reproducible.
        signs = np.sign(top[np.arange(reduced_dim), np.abs(top).argmax(axis=1)])
        kept = float(energy[::-1][:reduced_dim].sum() / max(energy.sum(), 1e-30))
        return cls(model_id, np.ascontiguousarray(top * signs[:, None], dtype=np.float32), kept)

    def reduce(self, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) or (dim,) vectors of this projection's model to float32 reduced vectors."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape[-1] != self.dim:
            raise SearchError(f"expected vectors of dim {self.dim}, got shape {vectors.shape}")
        return np.ascontiguousarray(vectors @ self.basis.T)
