"""The search interface on a vector database: Milvus (milvus-lite embedded for tests).

For catalogs past one worker's memory, or workers on many machines sharing one catalog,
the vectors live in Milvus and every worker queries it. One collection per model id, so
vectors of two models never meet; one row per vector, so an item with several vectors
(several photos, each the recipe's views) scores its best (the top ``k * max_views`` rows
are de-duplicated by item). Filters are
a Milvus expression evaluated inside the search.

The vector index defaults to FLAT (exact, and all milvus-lite offers); against a Milvus
server pass ``index_type``/``index_params`` (e.g. HNSW, IVF_SQ8) and the matching
``search_params`` (``ef``, ``nprobe``). docs/benchmarks.md ("vector-database") measures
them on a real server.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import NamedTuple

import numpy as np

from edgelens.catalog.augment import MAX_VIEWS
from edgelens.catalog.models import MAX_PHOTOS, CatalogItem
from edgelens.errors import SearchError
from edgelens.search.base import (
    ModelIndex,
    SearchFilter,
    best_items,
    checked_query,
    item_vectors,
    search_errors,
)
from edgelens.wire.records import Match

_FIELDS = ["item_id", "name", "price", "has_price", "currency", "available"]
_MAX_LIMIT = 16_384  # Milvus caps one search or query at this many rows
# (index params, search params) of the vector index of a new collection. HNSW's are the ones
# measured in docs/benchmarks.md ("vector-database"); FLAT is exact and needs none.
INDEX_SETTINGS: dict[str, tuple[dict[str, object], dict[str, object]]] = {
    "HNSW": ({"M": 16, "efConstruction": 100}, {"ef": 64}),
    "FLAT": ({}, {}),
}


class MilvusIndex(ModelIndex):
    def __init__(
        self,
        *,
        uri: str,
        model_id: str,
        dim: int,
        max_views: int = MAX_VIEWS,
        index_type: str = "FLAT",
        index_params: dict[str, object] | None = None,
        search_params: dict[str, object] | None = None,
    ) -> None:
        from pymilvus import MilvusClient

        super().__init__(model_id, dim)
        self._max_views = max_views
        self._uri = uri
        self._index_type, self._index_params = index_type, dict(index_params or {})
        self._search_params = {"metric_type": "IP", "params": dict(search_params or {})}
        self.collection = "edgelens_" + re.sub(r"[^A-Za-z0-9_]", "_", model_id)
        self._lock = threading.Lock()
        self._closed = False
        with _milvus_errors(f"cannot open Milvus at {uri}"):
            self._client = MilvusClient(uri)
            if self._client.has_collection(self.collection):
                self._client.load_collection(self.collection)  # into memory, for search
            else:
                self._create()

    def close(self) -> None:
        """Release the connection and, for a milvus-lite file, its embedded server (which
        would otherwise live until the process exits). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._client.close()
        if not self._uri.startswith(("http://", "https://")):
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self._uri)

    def __len__(self) -> int:
        return len(self._item_ids(""))

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and bool(self._item_ids(f"item_id == {_quote(item_id)}"))

    def upsert(self, items: Sequence[CatalogItem], vectors: Sequence[np.ndarray]) -> None:
        entries = item_vectors(items, vectors, self._dim)
        rows = [
            {
                "item_id": item.item_id,
                "name": item.name,
                "price": item.price if item.price is not None else 0.0,
                "has_price": item.price is not None,
                "currency": item.currency,
                "available": item.available,
                "vector": row.tolist(),
            }
            for item, matrix in entries
            for row in matrix
        ]
        with self._lock, _milvus_errors("cannot upsert into Milvus"):
            self._delete([item.item_id for item, _ in entries])
            self._client.insert(self.collection, rows)

    def remove(self, item_ids: Sequence[str]) -> None:
        with self._lock, _milvus_errors("cannot remove from Milvus"):
            self._delete(list(item_ids))

    def search(
        self, query: np.ndarray, *, k: int, filters: SearchFilter | None = None
    ) -> list[Match]:
        """The ``k`` best items: the top ``k * max_views`` rows, de-duplicated; when those
        hold fewer than ``k`` items (some item's several photos filled them), once more with
        room for every item to have MAX_PHOTOS photos."""
        query = checked_query(query, dim=self._dim, k=k)
        for limit in (k * self._max_views, k * self._max_views * MAX_PHOTOS):
            limit = min(_MAX_LIMIT, limit)
            hits = self._rows(query, limit, filters)
            matches = _distinct(hits, k)
            if len(matches) == k or len(hits) < limit or limit == _MAX_LIMIT:
                break
        return matches

    def _rows(self, query: np.ndarray, limit: int, filters: SearchFilter | None) -> list[dict]:
        with _milvus_errors("Milvus search failed"):
            (hits,) = self._client.search(
                self.collection,
                data=[query.tolist()],
                limit=limit,
                filter=_expression(filters),
                output_fields=_FIELDS,
                search_params=self._search_params,
            )
        return list(hits)

    def flush(self, *, timeout_s: float = 3600.0) -> None:
        """Seal what was inserted and wait until the vector index covers every row (a bulk
        load's end; searches are right before this, just slower on unindexed rows)."""
        with _milvus_errors("cannot flush Milvus"):
            self._client.flush(self.collection)
            deadline = time.monotonic() + timeout_s
            while True:
                (name,) = self._client.list_indexes(self.collection)
                state = self._client.describe_index(self.collection, name)
                if int(state.get("pending_index_rows", 0)) == 0 and int(
                    state.get("indexed_rows", 0)
                ) >= int(state.get("total_rows", 0)):
                    return
                if time.monotonic() > deadline:
                    raise SearchError(f"Milvus index not built in {timeout_s:.0f} s: {state}")
                time.sleep(0.5)

    def _create(self) -> None:
        from pymilvus import DataType

        schema = self._client.create_schema(auto_id=True, enable_dynamic_field=False)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("item_id", DataType.VARCHAR, max_length=128)
        schema.add_field("name", DataType.VARCHAR, max_length=512)
        schema.add_field("price", DataType.DOUBLE)
        schema.add_field("has_price", DataType.BOOL)
        schema.add_field("currency", DataType.VARCHAR, max_length=16)
        schema.add_field("available", DataType.BOOL)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self._dim)
        index = self._client.prepare_index_params()
        index.add_index(
            field_name="vector",
            index_type=self._index_type,
            metric_type="IP",
            params=self._index_params,
        )
        # Session: this client reads its own writes (an upsert is searchable at once) without
        # Strong's wait for every node to catch up; other clients see them within Bounded's lag.
        self._client.create_collection(
            self.collection, schema=schema, index_params=index, consistency_level="Session"
        )

    def _delete(self, item_ids: list[str]) -> None:
        if item_ids:
            quoted = ", ".join(_quote(i) for i in item_ids)
            self._client.delete(self.collection, filter=f"item_id in [{quoted}]")

    def _item_ids(self, expression: str) -> set[str]:
        with _milvus_errors("Milvus query failed"):
            rows = self._client.query(
                self.collection,
                filter=expression or 'item_id != ""',
                output_fields=["item_id"],
                limit=_MAX_LIMIT,
            )
        return {row["item_id"] for row in rows}


class _Row(NamedTuple):
    """What a row of the collection tells of its item."""

    item_id: str
    name: str
    price: float | None
    currency: str
    available: bool

    @classmethod
    def of(cls, entity: dict) -> _Row:
        price = entity["price"] if entity["has_price"] else None
        return cls(
            entity["item_id"], entity["name"], price, entity["currency"], entity["available"]
        )


def _distinct(hits: list[dict], k: int) -> list[Match]:
    """The first ``k`` items of ``hits`` (rows, best first), each at its best row."""
    return best_items(((_Row.of(hit["entity"]), float(hit["distance"])) for hit in hits), k)


def _expression(filters: SearchFilter | None) -> str:
    """:class:`SearchFilter`'s rule as a Milvus expression ("" filters nothing)."""
    if filters is None:
        return ""
    terms = []
    if filters.available_only:
        terms.append("available == true")
    if filters.min_price is not None:
        terms.append(f"has_price == true and price >= {float(filters.min_price)!r}")
    if filters.max_price is not None:
        terms.append(f"has_price == true and price <= {float(filters.max_price)!r}")
    return " and ".join(terms)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _milvus_errors(what: str) -> AbstractContextManager[None]:
    from pymilvus.exceptions import MilvusException

    return search_errors(what, errors=(MilvusException,))
