"""SQLite storage of the catalog and its per-model vector cache.

Vectors are keyed by (image sha256, model id, catalog recipe): the same picture is
never featurized twice by the same model and recipe, and vectors of another model
are never returned for this one. Keypoints for spatial verification are kept the same
way, by (image sha256, extraction method), in their compact stored form
(:meth:`LocalFeatures.to_blobs`). Each key holds a (count, dim) float32 matrix: the
photo's vector first, then its generated views'. WAL mode lets the web app read
while the CLI imports.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from edgelens.catalog.models import CatalogItem
from edgelens.errors import CatalogError, ItemNotFoundError
from edgelens.featurizer.local_features import LocalFeatures

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    item_id      TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    price        REAL,
    currency     TEXT NOT NULL,
    available    INTEGER NOT NULL,
    image_sha256 TEXT NOT NULL,
    image_file   TEXT NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_image ON items (image_sha256);
CREATE TABLE IF NOT EXISTS vectors (
    image_sha256 TEXT NOT NULL,
    model_id     TEXT NOT NULL,
    recipe       TEXT NOT NULL,
    count        INTEGER NOT NULL,
    dim          INTEGER NOT NULL,
    data         BLOB NOT NULL,
    PRIMARY KEY (image_sha256, model_id, recipe)
);
CREATE TABLE IF NOT EXISTS local_features (
    image_sha256 TEXT NOT NULL,
    method       TEXT NOT NULL,
    xy           BLOB NOT NULL,
    descriptors  BLOB NOT NULL,
    PRIMARY KEY (image_sha256, method)
);
CREATE TABLE IF NOT EXISTS changes (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    op      TEXT NOT NULL CHECK (op IN ('upsert', 'remove'))
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('version', '0');
"""

_ITEM_COLUMNS = "item_id, name, price, currency, available, image_sha256, image_file"
_CHUNK = 500  # values bound in one IN (...) list; SQLite allows 999 on older builds


class CatalogStore:
    """Thread-safe access to one catalog database file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise CatalogError(f"cannot open catalog database {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic change; bumps the catalog version so readers can notice it."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                self._conn.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'"
                )
                self._conn.execute("COMMIT")
            except BaseException as exc:
                self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise CatalogError(f"catalog write failed: {exc}") from exc
                raise

    @property
    def version(self) -> int:
        with self._lock:
            (value,) = self._conn.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        return int(value)

    # -- items -------------------------------------------------------------------------------

    def get(self, item_id: str) -> CatalogItem:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE item_id = ?", (item_id,)
            ).fetchone()
        if row is None:
            raise ItemNotFoundError(f"no catalog item {item_id!r}")
        return _item(row)

    def items(self) -> list[CatalogItem]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items ORDER BY item_id"
            ).fetchall()
        return [_item(row) for row in rows]

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._conn.execute("SELECT COUNT(*) FROM items").fetchone()
        return int(count)

    @staticmethod
    def upsert(conn: sqlite3.Connection, item: CatalogItem) -> bool:
        """Insert or replace ``item`` inside a transaction; True if it was new."""
        existed = conn.execute("SELECT 1 FROM items WHERE item_id = ?", (item.item_id,)).fetchone()
        conn.execute(
            f"INSERT OR REPLACE INTO items ({_ITEM_COLUMNS}, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item.item_id,
                item.name,
                item.price,
                item.currency,
                int(item.available),
                item.image_sha256,
                item.image_file,
                time.time(),
            ),
        )
        conn.execute("INSERT INTO changes (item_id, op) VALUES (?, 'upsert')", (item.item_id,))
        return existed is None

    def remove(self, item_ids: Iterable[str]) -> list[str]:
        """Delete items; returns the ids that existed. Cached vectors stay for re-adds."""
        removed = []
        with self.transaction() as conn:
            for item_id in item_ids:
                if conn.execute("DELETE FROM items WHERE item_id = ?", (item_id,)).rowcount:
                    conn.execute(
                        "INSERT INTO changes (item_id, op) VALUES (?, 'remove')", (item_id,)
                    )
                    removed.append(item_id)
        return removed

    # -- vector cache ------------------------------------------------------------------------

    def cached_hashes(self, model_id: str, recipe_id: str, hashes: Iterable[str]) -> set[str]:
        wanted = list(set(hashes))
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT image_sha256 FROM vectors WHERE model_id = ? AND recipe = ? "
                    f"AND image_sha256 IN ({marks})",
                    (model_id, recipe_id, *chunk),
                ).fetchall()
                found.update(row[0] for row in rows)
        return found

    @staticmethod
    def put_vectors(
        conn: sqlite3.Connection,
        image_sha256: str,
        model_id: str,
        recipe_id: str,
        matrix: np.ndarray,
    ) -> None:
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        conn.execute(
            "INSERT OR REPLACE INTO vectors (image_sha256, model_id, recipe, count, dim, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (image_sha256, model_id, recipe_id, matrix.shape[0], matrix.shape[1], matrix.tobytes()),
        )
        # Items showing this image become searchable with this model: a change for them.
        conn.execute(
            "INSERT INTO changes (item_id, op) "
            "SELECT item_id, 'upsert' FROM items WHERE image_sha256 = ?",
            (image_sha256,),
        )

    def vectors(
        self, model_id: str, recipe_id: str, item_ids: Sequence[str] | None = None
    ) -> tuple[list[CatalogItem], list[np.ndarray]]:
        """Items (all, or those of ``item_ids``) that have vectors of ``model_id`` and
        ``recipe_id``, each with its matrix.

        Items featurized only by other models are left out: they are not searchable
        with this model until re-indexed.
        """
        columns = ", ".join("i." + c for c in _ITEM_COLUMNS.split(", "))
        query = (
            f"SELECT {columns}, v.count, v.dim, v.data "
            "FROM items i JOIN vectors v ON v.image_sha256 = i.image_sha256 "
            "WHERE v.model_id = ? AND v.recipe = ?"
        )
        params: tuple[object, ...] = (model_id, recipe_id)
        if item_ids is not None:
            query += f" AND i.item_id IN ({','.join('?' * len(item_ids))})"
            params += tuple(item_ids)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY i.item_id", params).fetchall()
        items = [_item(row[:7]) for row in rows]
        matrices = [
            np.frombuffer(data, dtype=np.float32).reshape(count, dim)
            for count, dim, data in (row[7:] for row in rows)
        ]
        return items, matrices

    # -- keypoints for spatial verification ------------------------------------------------

    def has_local_features(self, method: str, image_sha256: str) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM local_features WHERE image_sha256 = ? AND method = ?",
                (image_sha256, method),
            ).fetchone()
        return row is not None

    @staticmethod
    def put_local_features(
        conn: sqlite3.Connection, image_sha256: str, method: str, features: LocalFeatures
    ) -> None:
        """Store ``features`` in their compact form (:meth:`LocalFeatures.to_blobs`)."""
        xy, descriptors = features.to_blobs()
        conn.execute(
            "INSERT OR REPLACE INTO local_features (image_sha256, method, xy, descriptors) "
            "VALUES (?, ?, ?, ?)",
            (image_sha256, method, xy, descriptors),
        )

    def items_local_features(
        self, item_ids: Sequence[str], method: str
    ) -> dict[str, LocalFeatures]:
        """The keypoints of each item's photo, by item id; items unknown or without
        keypoints of ``method`` are left out. One query per 500 items, each stored photo
        decoded once however many of the items show it."""
        wanted = list(dict.fromkeys(item_ids))
        rows = []
        with self._lock:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                rows += self._conn.execute(
                    "SELECT i.item_id, f.image_sha256, f.xy, f.descriptors FROM items i "
                    "JOIN local_features f ON f.image_sha256 = i.image_sha256 "
                    f"WHERE f.method = ? AND i.item_id IN ({','.join('?' * len(chunk))})",
                    (method, *chunk),
                ).fetchall()
        decoded: dict[str, LocalFeatures] = {}
        found = {}
        for item_id, sha, xy, descriptors in rows:
            if sha not in decoded:
                decoded[sha] = LocalFeatures.from_blobs(xy, descriptors)
            found[item_id] = decoded[sha]
        return found

    def item_local_features(self, item_id: str, method: str) -> LocalFeatures | None:
        """The keypoints of one item's photo, or None (unknown item, or not extracted)."""
        return self.items_local_features([item_id], method).get(item_id)

    def local_features_counts(self) -> dict[str, int]:
        """How many photos have stored keypoints, per extraction method."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT method, COUNT(*) FROM local_features GROUP BY method"
            ).fetchall()
        return {method: count for method, count in rows}

    def local_features_rows(
        self, method: str, *, after: str = "", limit: int = _CHUNK
    ) -> list[tuple[str, bytes, bytes]]:
        """(image sha256, xy blob, descriptors blob) of up to ``limit`` photos with keypoints
        of ``method``, by sha256 after ``after``: a page of a walk that rows written
        meanwhile do not disturb."""
        with self._lock:
            return self._conn.execute(
                "SELECT image_sha256, xy, descriptors FROM local_features "
                "WHERE method = ? AND image_sha256 > ? ORDER BY image_sha256 LIMIT ?",
                (method, after, limit),
            ).fetchall()

    def image_files(self, hashes: Sequence[str]) -> dict[str, str]:
        """The stored image file (relative to the images folder) of each sha256 an item
        shows; hashes no item shows are left out."""
        found: dict[str, str] = {}
        wanted = list(dict.fromkeys(hashes))
        with self._lock:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                rows = self._conn.execute(
                    "SELECT image_sha256, image_file FROM items "
                    f"WHERE image_sha256 IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                found.update(rows)
        return found

    @staticmethod
    def replace_local_features(
        conn: sqlite3.Connection,
        image_sha256: str,
        old_method: str,
        method: str,
        features: LocalFeatures | None,
    ) -> None:
        """Inside a transaction: the photo's keypoints of ``old_method`` deleted, ``features``
        (when given) stored as ``method``, and a change logged for the items showing it, so
        that a worker holding their keypoints reads them again."""
        conn.execute(
            "DELETE FROM local_features WHERE image_sha256 = ? AND method = ?",
            (image_sha256, old_method),
        )
        if features is not None:
            CatalogStore.put_local_features(conn, image_sha256, method, features)
        conn.execute(
            "INSERT INTO changes (item_id, op) "
            "SELECT item_id, 'upsert' FROM items WHERE image_sha256 = ?",
            (image_sha256,),
        )

    # -- change log ----------------------------------------------------------------------

    @property
    def last_change(self) -> int:
        """Sequence number of the newest change; a follower resumes after it."""
        with self._lock:
            (seq,) = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()
        return int(seq)

    def changes_since(self, seq: int, limit: int = 10_000) -> list[tuple[int, str, str]]:
        """(seq, item id, op) of changes after ``seq``, oldest first.

        The log is written in the same transaction as the change it records, so a
        follower that reads it never misses one, whatever happened to notifications.
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, item_id, op FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return [(int(s), item_id, op) for s, item_id, op in rows]

    def models(self) -> dict[tuple[str, str], int]:
        """How many images have cached vectors, per (model id, recipe)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT model_id, recipe, COUNT(*) FROM vectors GROUP BY model_id, recipe"
            ).fetchall()
        return {(model_id, recipe): count for model_id, recipe, count in rows}


def _item(row: tuple) -> CatalogItem:
    item_id, name, price, currency, available, sha, image_file = row
    return CatalogItem(item_id, name, price, currency, bool(available), sha, image_file)
