"""Retrieval metrics from the rank of each query's true item.

Each query has exactly one relevant catalog item, so average precision is
1/rank and mAP is the mean reciprocal rank.

A set of a few dozen real queries moves top-1 by 2-5 points per query, so top-1 is also
given with its 95% interval (:meth:`RetrievalMetrics.top1_interval`): two systems whose
intervals overlap widely have not been told apart by that set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class RetrievalMetrics:
    top1: float  # the product's answer: the true item first and not answered "no match"
    top5: float
    recall_at_10: float
    map: float
    queries: int
    top1_ranked: float  # the true item first, whatever the decision
    no_match_known: float  # known queries answered "no match"

    @classmethod
    def from_ranks(
        cls, ranks: Sequence[int], answered: Sequence[bool] | None = None
    ) -> RetrievalMetrics:
        """``ranks`` are 1-based positions of the true item; 0 means it was not returned.
        ``answered[i]`` is False when query i was answered "no match" (default: none)."""
        if not ranks:
            raise ValueError("no queries to evaluate")
        r = np.asarray(ranks, dtype=np.float64)
        said = np.ones(len(r), bool) if answered is None else np.asarray(answered, bool)
        found = r > 0
        return cls(
            top1_ranked=float(np.mean(found & (r <= 1))),
            no_match_known=float(np.mean(~said)),
            top1=float(np.mean(found & (r <= 1) & said)),
            top5=float(np.mean(found & (r <= 5))),
            recall_at_10=float(np.mean(found & (r <= 10))),
            map=float(np.mean(np.where(found, 1.0 / np.where(found, r, 1.0), 0.0))),
            queries=len(ranks),
        )

    def top1_interval(self, z: float = 1.96) -> tuple[float, float]:
        """Wilson's score interval of top-1 (95% for the default ``z``). Unlike the normal
        approximation it stays within [0, 1] and does not shrink to nothing when every
        query is right, which is where our sets sit."""
        n, p = self.queries, self.top1
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    def to_dict(self) -> dict[str, float | int | list[float]]:
        return asdict(self) | {"top1_interval": list(self.top1_interval())}
