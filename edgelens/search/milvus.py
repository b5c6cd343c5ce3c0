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

A whole catalog (an import, a reindex into a new model's collection) goes in through
:meth:`MilvusIndex.bulk_load`, not row by row through :meth:`MilvusIndex.upsert`: the
server's own bulk insert reads numpy column files where it can see them, else large
column-wise insert requests go out on several connections; docs/decisions.md ("Milvus
bulk load and query tuning") says why.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import logging
import math
import re
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

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
# (index params, search params, search params under a filter) of the vector index of a new
# collection. HNSW's are the ones measured in docs/benchmarks.md ("vector-database"): ef 256
# for a plain search, and 512 where a filter makes the graph walk pass over the rows it
# leaves out (docs/decisions.md, "Milvus bulk load and query tuning"); FLAT is exact.
INDEX_SETTINGS: dict[str, tuple[dict[str, object], dict[str, object], dict[str, object]]] = {
    "HNSW": ({"M": 16, "efConstruction": 100}, {"ef": 256}, {"ef": 512}),
    "FLAT": ({}, {}, {}),
}

logger = logging.getLogger(__name__)

LoadProgress = Callable[[int], None]  # called with the number of rows just stored
# Vectors' bytes per bulk-insert task. The server cuts each task into segments of its
# configured size plus one remainder, so one task holds a catalog of a few million rows
# whole; beyond that the next task's files are written while the server reads these.
_BULK_TASK_BYTES = 8 << 30
_INSERT_REQUEST_BYTES = 32 << 20  # one insert request, half the proxy's 64 MB gRPC limit
_INSERT_CONNECTIONS = 3  # concurrent insert requests: the client encodes while the server stores
_LOG_EVERY_S = 10.0
# A collection another process has just created may not have its index yet (a fleet's
# workers starting at once against an empty server): opening it waits this long for it.
_INDEX_WAIT_S = 60.0
_INDEX_NOT_FOUND = 700  # Milvus's error code for a collection without its index
_RELEASED_WHILE_LOADING = 101  # "collection not loaded": released while a load waited

Entries = Sequence[tuple[CatalogItem, np.ndarray]]  # items, each with its (n, dim) vectors


@dataclass(frozen=True)
class BulkLoadReport:
    """How :meth:`MilvusIndex.bulk_load` went: the path it took, the rows it stored, the
    seconds until every row was stored and until every row was indexed and searchable."""

    path: str  # "bulk insert" (the server read column files) or "insert" (requests)
    rows: int
    stored_s: float
    searchable_s: float


# The longest name and currency the collection's fields hold, in UTF-8 bytes (so a server
# counting characters holds them too). The catalog sets no limit: a longer one is cut to
# fit here, where it is only what a match shows, rather than failing the item's upsert.
NAME_BYTES = 512
CURRENCY_BYTES = 16


def _fitted(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character."""
    return text.encode()[:max_bytes].decode(errors="ignore")


class _Columns(NamedTuple):
    """Rows of the collection as one array per field (an item's metadata on each of its
    rows), the form both the bulk-insert files and a column-wise insert request take."""

    item_id: np.ndarray
    name: np.ndarray
    price: np.ndarray
    has_price: np.ndarray
    currency: np.ndarray
    available: np.ndarray
    vector: np.ndarray

    @classmethod
    def of(cls, entries: Entries, vector: np.ndarray | None = None) -> _Columns:
        """The columns of ``entries``; their vectors stacked into ``vector`` when given (a
        file being written) or into a new array."""
        counts = [matrix.shape[0] for _, matrix in entries]
        if vector is None:
            vector = np.empty((sum(counts), entries[0][1].shape[1]), dtype="<f4")
        row = 0
        for _, matrix in entries:
            vector[row : row + matrix.shape[0]] = matrix
            row += matrix.shape[0]

        def column(values: list[object], dtype: object) -> np.ndarray:
            return np.repeat(np.array(values, dtype=dtype), counts)

        items = [item for item, _ in entries]
        return cls(
            item_id=column([i.item_id for i in items], str),
            name=column([_fitted(i.name, NAME_BYTES) for i in items], str),
            price=column([i.price if i.price is not None else 0.0 for i in items], np.float64),
            has_price=column([i.price is not None for i in items], bool),
            currency=column([_fitted(i.currency, CURRENCY_BYTES) for i in items], str),
            available=column([i.available for i in items], bool),
            vector=vector,
        )

    @property
    def rows(self) -> int:
        return self.vector.shape[0]


def _runs(entries: Entries, max_bytes: int) -> Iterator[Entries]:
    """``entries`` cut into runs of whole items of at most ``max_bytes`` of vectors each
    (an item larger than that alone), so no copy of the whole catalog is ever made."""
    start, size = 0, 0
    for end, (_, matrix) in enumerate(entries):
        if size and size + matrix.nbytes > max_bytes:
            yield entries[start:end]
            start, size = end, 0
        size += matrix.nbytes
    if start < len(entries):
        yield entries[start:]


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
        filtered_search_params: dict[str, object] | None = None,
        search_consistency: str | None = None,
    ) -> None:
        """``filtered_search_params``: those of a search under a filter (default: the
        same as ``search_params``); ``search_consistency`` (Strong, Session, Bounded,
        Eventually) overrides the collection's Session level for searches only."""
        from pymilvus import MilvusClient

        super().__init__(model_id, dim)
        self._max_views = max_views
        self._uri = uri
        self._index_type, self._index_params = index_type, dict(index_params or {})
        self._search_params = dict(search_params or {})
        self._filtered_search_params = dict(filtered_search_params or self._search_params)
        self._consistency = {"consistency_level": search_consistency} if search_consistency else {}
        self.collection = "edgelens_" + re.sub(r"[^A-Za-z0-9_]", "_", model_id)
        self._lock = threading.Lock()
        self._closed = False
        with _milvus_errors(f"cannot open Milvus at {uri}"):
            self._client = MilvusClient(uri)
            if not self._client.has_collection(self.collection):
                self._create()
            self._load_when_indexed()

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
        """Replace the items' rows: their earlier rows deleted, the new ones inserted in
        column-wise requests under the server's message limit (a catalog change of many
        items is one call)."""
        entries = item_vectors(items, vectors, self._dim)
        with self._lock, _milvus_errors("cannot upsert into Milvus"):
            self._delete([item.item_id for item, _ in entries])
            for chunk in map(_Columns.of, _runs(entries, _INSERT_REQUEST_BYTES)):
                self._insert(self._client, chunk)

    def bulk_load(
        self,
        items: Sequence[CatalogItem],
        vectors: Sequence[np.ndarray],
        *,
        progress: LoadProgress | None = None,
        staging_dir: str | Path | None = None,
        bulk_insert: bool = True,
        timeout_s: float = 4 * 3600.0,
    ) -> BulkLoadReport:
        """Fill this empty (new) collection with a whole catalog; return once every row is
        indexed and searchable, ``progress`` told the rows as they are stored.

        The rows go as numpy column files through the server's bulk insert where the
        server can read files this process writes (``staging_dir``; by default the
        temporary directory, for a server on this machine); else, with ``bulk_insert``
        False, or when the server fails the first file set, as column-wise insert requests
        on several connections, flushed once. Never a delete: the collection must be empty.
        It is released meanwhile (it had nothing to find), so the server neither serves nor
        loads segments whose index is not built yet, and loaded once the index covers every
        row.
        """
        entries = item_vectors(items, vectors, self._dim)
        rows = sum(matrix.shape[0] for _, matrix in entries)
        deadline = time.monotonic() + timeout_s
        staging = _staging_dir(self._uri, staging_dir) if bulk_insert else None
        with self._lock, _milvus_errors(f"cannot bulk load into Milvus {self.collection}"):
            if self._item_ids(""):
                raise SearchError(f"{self.collection} is not empty: upsert into it instead")
            started = time.monotonic()
            logger.info(
                "Milvus %s: loading %d rows of %d items", self.collection, rows, len(entries)
            )
            tracker = _Tracker(self.collection, rows, progress)
            before = self._indexed_rows()
            self._client.release_collection(self.collection)
            try:
                path = "bulk insert"
                tasks = None
                if staging is not None:
                    tasks = self._import_files(entries, staging, tracker, deadline)
                if tasks is None:
                    path = "insert"
                    self._insert_columns(entries, tracker)
                stored_s = time.monotonic() - started
                self._await_completed(tasks or [], deadline)
                self._wait_indexed(deadline, rows=before + rows)
            except BaseException:
                with contextlib.suppress(Exception):  # searchable again, whatever is in it
                    self._client.load_collection(self.collection)
                raise
            self._client.load_collection(self.collection)
            self._wait_counted(rows, deadline)
            searchable_s = time.monotonic() - started
        logger.info(
            "Milvus %s: %d rows by %s, stored in %.0f s (%.0f rows/s), searchable after %.0f s",
            self.collection,
            rows,
            path,
            stored_s,
            rows / max(stored_s, 1e-9),
            searchable_s,
        )
        return BulkLoadReport(path, rows, stored_s, searchable_s)

    def _import_files(
        self, entries: Entries, staging: Path, tracker: _Tracker, deadline: float
    ) -> list[int] | None:
        """Bulk insert ``entries`` from numpy files under ``staging``: the tasks' ids once
        each has stored its rows, or None (nothing stored) when the server cannot import
        the first file set. While the server reads one task's files the next task's are
        written; each task's go once it is stored."""
        from pymilvus.exceptions import MilvusException

        handler = self._client._get_connection()  # bulk insert is not on MilvusClient
        staging.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{self.collection}-", dir=staging) as tmp:
            Path(tmp).chmod(0o755)  # the server may run as another user
            running: deque[tuple[int, int, Path]] = deque()  # task id, rows, its files
            tasks: list[int] = []
            for number, run in enumerate(_runs(entries, _BULK_TASK_BYTES)):
                folder = Path(tmp) / f"{number:05d}"
                files, rows = _write_columns(run, folder)
                try:
                    task = handler.do_bulk_insert(self.collection, "", files)
                except MilvusException as exc:
                    if number:
                        raise
                    logger.warning("Milvus bulk insert refused (%s); inserting instead", exc)
                    return None
                running.append((task, rows, folder))
                tasks.append(task)
                if number == 0:  # the first alone: whether the server reads our files at all
                    if not self._await_task(handler, running[0], tracker, deadline, first=True):
                        return None
                    running.popleft()
                while len(running) > 1:  # one importing, the next one's files written meanwhile
                    self._await_task(handler, running.popleft(), tracker, deadline)
            while running:
                self._await_task(handler, running.popleft(), tracker, deadline)
        return tasks

    def _await_completed(self, tasks: list[int], deadline: float) -> None:
        """Until the bulk-insert tasks are completed, their segments known to the server
        as flushed: a collection loaded before then may not see them for a while."""
        from pymilvus import BulkInsertState

        handler = self._client._get_connection()
        for task in tasks:
            for polls in itertools.count():
                state = handler.get_bulk_insert_state(task)
                if state.state == BulkInsertState.ImportCompleted:
                    break
                if _failed(state.state) or time.monotonic() > deadline:
                    raise SearchError(f"Milvus bulk insert task {task} not completed: {state}")
                _pause(polls)

    def _await_task(
        self,
        handler: object,
        task: tuple[int, int, Path],
        tracker: _Tracker,
        deadline: float,
        *,
        first: bool = False,
    ) -> bool:
        """Wait until the bulk-insert task has stored its rows (logging its progress); a
        failed first task is False, a later one a SearchError (earlier tasks' rows are in)."""
        from pymilvus import BulkInsertState

        task_id, rows, folder = task
        logged = time.monotonic()
        for polls in itertools.count():
            state = handler.get_bulk_insert_state(task_id)  # type: ignore[attr-defined]
            if _failed(state.state):
                if first:
                    logger.warning(
                        "Milvus bulk insert of %s failed (%s); inserting instead",
                        folder,
                        state.failed_reason,
                    )
                    return False
                raise SearchError(
                    f"Milvus bulk insert task {task_id} failed: {state.failed_reason}"
                )
            if state.state in (BulkInsertState.ImportPersisted, BulkInsertState.ImportCompleted):
                break
            if time.monotonic() > deadline:
                raise SearchError(f"Milvus bulk insert task {task_id} not done in time: {state}")
            if time.monotonic() - logged >= _LOG_EVERY_S:
                logged = time.monotonic()
                logger.info(
                    "Milvus %s: bulk insert of %d rows %s, %s%% read",
                    self.collection,
                    rows,
                    state.state_name,
                    state.infos.get("progress_percent", "0"),
                )
            _pause(polls)
        shutil.rmtree(folder)
        tracker.stored(rows)
        return True

    def _insert_columns(self, entries: Entries, tracker: _Tracker) -> None:
        """Column-wise insert requests, ``_INSERT_CONNECTIONS`` in flight on connections
        of their own; one flush at the end."""
        from pymilvus import MilvusClient

        clients = [MilvusClient(self._uri, dedicated=True) for _ in range(_INSERT_CONNECTIONS)]
        try:
            with ThreadPoolExecutor(len(clients), thread_name_prefix="milvus-insert") as pool:
                running: deque[tuple[Future[None], int]] = deque()
                runs = _runs(entries, _INSERT_REQUEST_BYTES)
                for number, chunk in enumerate(map(_Columns.of, runs)):
                    client = clients[number % len(clients)]
                    running.append((pool.submit(self._insert, client, chunk), chunk.rows))
                    while len(running) >= 2 * len(clients):  # bounded: the chunks are copies
                        done, rows = running.popleft()
                        done.result()
                        tracker.stored(rows)
                while running:
                    done, rows = running.popleft()
                    done.result()
                    tracker.stored(rows)
        finally:
            for client in clients:
                client.close()
        self._client.flush(self.collection)

    def _insert(self, client: object, chunk: _Columns) -> None:
        """One column-wise insert request built straight from the arrays: pymilvus would
        turn every float of the vectors into a Python float first."""
        request = _insert_request(self.collection, chunk, self._dim)
        handler = client._get_connection()  # type: ignore[attr-defined]
        handler.batch_insert(self.collection, [], insert_param=request, schema={"fields": []})

    def _wait_counted(self, rows: int, deadline: float) -> None:
        """Until the loaded collection counts ``rows`` rows."""
        for polls in itertools.count():
            (counted,) = self._client.query(
                self.collection, output_fields=["count(*)"], consistency_level="Strong"
            )
            if int(counted["count(*)"]) >= rows:
                return
            if time.monotonic() > deadline:
                raise SearchError(f"Milvus {self.collection}: {counted} of {rows} rows loaded")
            _pause(polls)

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
        """The best ``limit`` rows."""
        expression = _expression(filters)
        params = search_params(
            self._filtered_search_params if expression else self._search_params, limit=limit
        )
        with _milvus_errors("Milvus search failed"):
            (hits,) = self._client.search(
                self.collection,
                data=[query.tolist()],
                limit=limit,
                filter=expression,
                output_fields=_FIELDS,
                search_params={"metric_type": "IP", "params": params},
                **self._consistency,
            )
        return list(hits)

    def flush(self, *, timeout_s: float = 3600.0) -> None:
        """Seal what was inserted and wait until the vector index covers every row (a bulk
        load's end; searches are right before this, just slower on unindexed rows)."""
        with _milvus_errors("cannot flush Milvus"):
            self._client.flush(self.collection)
            self._wait_indexed(time.monotonic() + timeout_s)

    def _wait_indexed(self, deadline: float, *, rows: int = 0) -> None:
        """Until the vector index covers every row the server knows of, and at least
        ``rows`` (rows a bulk insert stored may not be known to it yet); a log line every
        few seconds meanwhile."""
        logged = time.monotonic()
        for polls in itertools.count():
            state = self._index_state()
            indexed = int(state.get("indexed_rows", 0))
            total = max(rows, int(state.get("total_rows", 0)))
            if int(state.get("pending_index_rows", 0)) == 0 and indexed >= total:
                return
            if time.monotonic() > deadline:
                raise SearchError(f"Milvus index of {self.collection} not built in time: {state}")
            if time.monotonic() - logged >= _LOG_EVERY_S:
                logged = time.monotonic()
                logger.info("Milvus %s: %d / %d rows indexed", self.collection, indexed, total)
            _pause(polls)

    def _indexed_rows(self) -> int:
        return int(self._index_state().get("indexed_rows", 0))

    def _index_state(self) -> dict:
        (name,) = self._client.list_indexes(self.collection, field_name="vector")
        return self._client.describe_index(self.collection, name)

    def _load_when_indexed(self) -> None:
        """Load the collection into memory, for search; when another process created it a
        moment ago and is still creating its index, wait for the index (at most
        :data:`_INDEX_WAIT_S`), then create it: that process may have died in between. A
        load that another process's bulk load released under it (:meth:`bulk_load`) is
        tried again, within the same time."""
        from pymilvus.exceptions import MilvusException

        deadline = time.monotonic() + _INDEX_WAIT_S
        while True:
            try:
                self._client.load_collection(self.collection)
                return
            except MilvusException as exc:
                if exc.code == _RELEASED_WHILE_LOADING and time.monotonic() <= deadline:
                    time.sleep(0.2)
                    continue
                if exc.code != _INDEX_NOT_FOUND:
                    raise
                if time.monotonic() > deadline:
                    logger.warning(
                        "Milvus %s has no vector index %.0f s after it was found: creating it",
                        self.collection,
                        _INDEX_WAIT_S,
                    )
                    self._client.create_index(self.collection, self._vector_index())
                    deadline = math.inf
            time.sleep(0.2)

    def _vector_index(self) -> object:
        index = self._client.prepare_index_params()
        index.add_index(
            field_name="vector",
            index_type=self._index_type,
            metric_type="IP",
            params=self._index_params,
        )
        return index

    def _create(self) -> None:
        from pymilvus import DataType

        schema = self._client.create_schema(auto_id=True, enable_dynamic_field=False)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("item_id", DataType.VARCHAR, max_length=128)
        schema.add_field("name", DataType.VARCHAR, max_length=NAME_BYTES)
        schema.add_field("price", DataType.DOUBLE)
        schema.add_field("has_price", DataType.BOOL)
        schema.add_field("currency", DataType.VARCHAR, max_length=CURRENCY_BYTES)
        schema.add_field("available", DataType.BOOL)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self._dim)
        # Session: this client reads its own writes (an upsert is searchable at once) without
        # Strong's wait for every node to catch up; other clients see them within Bounded's lag.
        # No index_params here: pymilvus would load the collection itself, and a load that
        # another worker's bulk load releases meanwhile (code 101) would fail this opener;
        # the caller loads it through _load_when_indexed, which tries that load again.
        self._client.create_collection(self.collection, schema=schema, consistency_level="Session")
        self._client.create_index(self.collection, self._vector_index())

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


class _Tracker:
    """Counts the rows a bulk load has stored, tells ``progress`` and logs a line at most
    every few seconds (and the last)."""

    def __init__(self, collection: str, rows: int, progress: LoadProgress | None) -> None:
        self._collection, self._rows, self._progress = collection, rows, progress
        self._done = 0
        self._started = self._logged = time.monotonic()

    def stored(self, rows: int) -> None:
        self._done += rows
        if self._progress is not None:
            self._progress(rows)
        now = time.monotonic()
        if now - self._logged >= _LOG_EVERY_S or self._done >= self._rows:
            self._logged = now
            logger.info(
                "Milvus %s: %d / %d rows stored (%.0f rows/s)",
                self._collection,
                self._done,
                self._rows,
                self._done / max(now - self._started, 1e-9),
            )


def _failed(state: int) -> bool:
    """Whether a bulk-insert task in ``state`` has failed (it stored nothing)."""
    from pymilvus import BulkInsertState

    return state in (BulkInsertState.ImportFailed, BulkInsertState.ImportFailedAndCleaned)


def _pause(polls: int) -> None:
    """Sleep between two polls of the server: short at first (a small load is done in a
    moment), growing to a few seconds (an index build takes minutes)."""
    time.sleep(min(5.0, 0.1 * 1.5**polls))


def _staging_dir(uri: str, staging_dir: str | Path | None) -> Path | None:
    """Where to write bulk-insert files: ``staging_dir`` if given, else the temporary
    directory for a server on this machine (a loopback address), else None (a remote
    server or milvus-lite cannot read them)."""
    if staging_dir is not None:
        return Path(staging_dir)
    if not uri.startswith(("http://", "https://", "tcp://")):
        return None
    host = urlparse(uri).hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    return Path(tempfile.gettempdir()) if local else None


def _write_columns(entries: Entries, folder: Path) -> tuple[list[str], int]:
    """One numpy file per field in ``folder`` (the file name is the field's), as the
    server's bulk insert reads them: their absolute paths, and the rows. The vectors are
    written in place, never held twice."""
    folder.mkdir()
    rows, dim = sum(matrix.shape[0] for _, matrix in entries), entries[0][1].shape[1]
    vectors = folder / "vector.npy"
    stacked = np.lib.format.open_memmap(vectors, mode="w+", dtype="<f4", shape=(rows, dim))
    columns = _Columns.of(entries, vector=stacked)
    stacked.flush()
    files = [str(vectors.resolve())]
    for field in _Columns._fields[:-1]:
        path = folder / f"{field}.npy"
        np.save(path, getattr(columns, field))
        files.append(str(path.resolve()))
    return files, rows


def _insert_request(collection: str, chunk: _Columns, dim: int) -> object:
    """A pymilvus InsertRequest of ``chunk``; the vectors go in as one packed protobuf
    field parsed from their bytes."""
    from pymilvus.grpc_gen import milvus_pb2, schema_pb2

    request = milvus_pb2.InsertRequest(collection_name=collection, num_rows=chunk.rows)
    for field in ("item_id", "name", "currency"):
        data = request.fields_data.add(field_name=field, type=schema_pb2.VarChar)
        data.scalars.string_data.data.extend(getattr(chunk, field).tolist())
    data = request.fields_data.add(field_name="price", type=schema_pb2.Double)
    data.scalars.double_data.data.extend(chunk.price.tolist())
    for field in ("has_price", "available"):
        data = request.fields_data.add(field_name=field, type=schema_pb2.Bool)
        data.scalars.bool_data.data.extend(getattr(chunk, field).tolist())
    data = request.fields_data.add(field_name="vector", type=schema_pb2.FloatVector)
    data.vectors.dim = dim
    raw = chunk.vector.tobytes()  # FloatArray's field 1, packed: tag, length, the floats
    data.vectors.float_vector.MergeFromString(b"\x0a" + _varint(len(raw)) + raw)
    return request


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def search_params(params: dict[str, object], *, limit: int) -> dict[str, object]:
    """``params`` for a search of ``limit`` rows: HNSW's ``ef`` raised to ``limit`` where
    it is lower (the server refuses a search for more rows than ``ef``)."""
    if "ef" in params and int(params["ef"]) < limit:  # type: ignore[call-overload]
        return {**params, "ef": limit}
    return params


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
