"""Retrieval metrics from the rank of each query's true item.

Each query has exactly one relevant catalog item, so average precision is
1/rank and mAP is the mean reciprocal rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class RetrievalMetrics:
    top1: float
    top5: float
    recall_at_10: float
    map: float
    queries: int

    @classmethod
    def from_ranks(cls, ranks: Sequence[int]) -> RetrievalMetrics:
        """``ranks`` are 1-based positions of the true item; 0 means it was not returned."""
        if not ranks:
            raise ValueError("no queries to evaluate")
        r = np.asarray(ranks, dtype=np.float64)
        found = r > 0
        return cls(
            top1=float(np.mean(found & (r <= 1))),
            top5=float(np.mean(found & (r <= 5))),
            recall_at_10=float(np.mean(found & (r <= 10))),
            map=float(np.mean(np.where(found, 1.0 / np.where(found, r, 1.0), 0.0))),
            queries=len(ranks),
        )

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)
