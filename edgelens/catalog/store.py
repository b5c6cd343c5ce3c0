"""SQLite storage of the catalog and its per-model vector cache.

An item has one or more photos (``photos``, the first of them its cover in ``items``).
Vectors are keyed by (image sha256, model id, catalog recipe): the same picture is
never featurized twice by the same model and recipe, and vectors of another model
are never returned for this one. Keypoints for spatial verification are kept the same
way, by (image sha256, extraction method), in their compact stored form
(:meth:`LocalFeatures.to_blobs`). Each key holds a (count, dim) float32 matrix: the
photo's vector first, then its generated views'. WAL mode lets the web app read
while the CLI imports.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from edgelens.catalog.models import (
    MAX_PHOTOS,
    CatalogItem,
    Correction,
    ItemPhoto,
    PhotoOrigin,
    indexed_photos,
)
from edgelens.errors import CatalogError, ItemNotFoundError, LastPhotoError
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
CREATE TABLE IF NOT EXISTS photos (
    item_id      TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    image_file   TEXT NOT NULL,
    origin       TEXT NOT NULL,
    added_at     REAL NOT NULL,
    PRIMARY KEY (item_id, image_sha256)
);
CREATE INDEX IF NOT EXISTS photos_by_image ON photos (image_sha256);
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
CREATE TABLE IF NOT EXISTS removed_items (
    item_id    TEXT PRIMARY KEY,
    removed_at REAL NOT NULL,
    item       TEXT NOT NULL,
    photos     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS corrections (
    correction_id INTEGER PRIMARY KEY AUTOINCREMENT,
    at            REAL NOT NULL,
    user          TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    item_id       TEXT,
    photo_sha256  TEXT,
    undone_at     REAL,
    undone_by     TEXT
);
CREATE INDEX IF NOT EXISTS corrections_by_item ON corrections (item_id);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('version', '0');
"""
# Name search (full-text, prefix per word) kept by triggers; built once for an older catalog.
_SEARCH_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS items_search
    USING fts5(name, content='items', content_rowid='rowid');
CREATE TRIGGER IF NOT EXISTS items_search_insert AFTER INSERT ON items BEGIN
    INSERT INTO items_search (rowid, name) VALUES (new.rowid, new.name);
END;
CREATE TRIGGER IF NOT EXISTS items_search_delete AFTER DELETE ON items BEGIN
    INSERT INTO items_search (items_search, rowid, name) VALUES ('delete', old.rowid, old.name);
END;
CREATE TRIGGER IF NOT EXISTS items_search_update AFTER UPDATE OF name ON items BEGIN
    INSERT INTO items_search (items_search, rowid, name) VALUES ('delete', old.rowid, old.name);
    INSERT INTO items_search (rowid, name) VALUES (new.rowid, new.name);
END;
"""
# A catalog from before photos: each item's one image becomes its first photo (once).
_PHOTOS_MIGRATION = """
INSERT OR IGNORE INTO photos (item_id, image_sha256, image_file, origin, added_at)
    SELECT item_id, image_sha256, image_file, 'import', updated_at FROM items;
INSERT OR IGNORE INTO meta (key, value) VALUES ('photos', '1');
"""

_CORRECTION_COLUMNS = (
    "correction_id, at, user, device_id, seq, item_id, photo_sha256, undone_at, undone_by"
)
_ITEM_COLUMNS = "item_id, name, price, currency, available, image_sha256, image_file"
_CHUNK = 500  # values bound in one IN (...) list; SQLite allows 999 on older builds


class CatalogStore:
    """Thread-safe access to one catalog database file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._counted = (-1, 0)  # (catalog version, items then)
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            if self._conn.execute("SELECT 1 FROM meta WHERE key = 'photos'").fetchone() is None:
                self._conn.executescript(f"BEGIN IMMEDIATE; {_PHOTOS_MIGRATION} COMMIT;")
            if self._conn.execute("SELECT 1 FROM meta WHERE key = 'search'").fetchone() is None:
                self._conn.executescript(
                    f"BEGIN IMMEDIATE; {_SEARCH_SCHEMA} "
                    "INSERT INTO items_search (items_search) VALUES ('rebuild'); "
                    "INSERT INTO meta (key, value) VALUES ('search', '1'); COMMIT;"
                )
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

    def browse(
        self,
        *,
        text: str = "",
        available: bool | None = None,
        after: str = "",
        before: str = "",
        limit: int,
    ) -> list[CatalogItem]:
        """A page of items: the ``limit`` after item ``after`` (or, given ``before``, the
        ``limit`` before it, still in page order), of that availability; one more than
        ``limit`` when there are more that way. A keyset page, as fast at the millionth item
        as at the first. Without ``text``, or with the start of some items' ids, by id;
        otherwise the items whose name has words starting with each of its words, in the
        order they were added (the order the name index keeps)."""
        if text and not self._ids_start_with(text):
            return self._named(text, available, after, before, limit)
        where, params = [], []
        if available is not None:
            where.append("available = ?")
            params.append(int(available))
        if text:
            where.append("item_id >= ? AND item_id < ?")
            params += [text, text + "\uffff"]
        where.append("item_id < ?" if before else "item_id > ?")
        params.append(before or after)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE {' AND '.join(where)} "
                f"ORDER BY item_id {'DESC' if before else 'ASC'} LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        items = [_item(row) for row in rows]
        return items[::-1] if before else items

    def _ids_start_with(self, text: str) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM items WHERE item_id >= ? AND item_id < ? LIMIT 1",
                (text, text + "\uffff"),
            ).fetchone()
        return row is not None

    def _named(
        self, text: str, available: bool | None, after: str, before: str, limit: int
    ) -> list[CatalogItem]:
        """A page of the name search, walking the name index in its own (rowid) order, so
        a word in half the names costs what a rare one does."""
        columns = ", ".join("i." + c for c in _ITEM_COLUMNS.split(", "))
        where, params = ["items_search MATCH ?"], [_match_expression(text)]
        if available is not None:
            where.append("i.available = ?")
            params.append(int(available))
        with self._lock:
            cursor = self._conn.execute(
                "SELECT rowid FROM items WHERE item_id = ?", (before or after,)
            ).fetchone()
            if cursor is not None:
                where.append(f"items_search.rowid {'<' if before else '>'} ?")
                params.append(cursor[0])
            rows = self._conn.execute(
                f"SELECT {columns} FROM items_search JOIN items i "
                f"ON i.rowid = items_search.rowid WHERE {' AND '.join(where)} "
                f"ORDER BY items_search.rowid {'DESC' if before else 'ASC'} LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        items = [_item(row) for row in rows]
        return items[::-1] if before else items

    def __len__(self) -> int:
        """How many items; counted again only after a change (a count of a million rows
        is a scan)."""
        with self._lock:
            version = self.version
            if self._counted[0] != version:
                (count,) = self._conn.execute("SELECT COUNT(*) FROM items").fetchone()
                self._counted = (version, int(count))
            return self._counted[1]

    @staticmethod
    def upsert(conn: sqlite3.Connection, item: CatalogItem) -> bool:
        """Insert or replace ``item`` inside a transaction; True if it was new. Its cover
        photo is one of its photos (added, as imported, when it was not)."""
        existed = conn.execute("SELECT 1 FROM items WHERE item_id = ?", (item.item_id,)).fetchone()
        conn.execute(
            f"INSERT INTO items ({_ITEM_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (item_id) DO UPDATE SET name = excluded.name, price = excluded.price, "
            "currency = excluded.currency, available = excluded.available, "
            "image_sha256 = excluded.image_sha256, image_file = excluded.image_file, "
            "updated_at = excluded.updated_at",
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
        conn.execute(
            "INSERT OR IGNORE INTO photos (item_id, image_sha256, image_file, origin, added_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (item.item_id, item.image_sha256, item.image_file, PhotoOrigin.IMPORT, time.time()),
        )
        conn.execute("INSERT INTO changes (item_id, op) VALUES (?, 'upsert')", (item.item_id,))
        return existed is None

    def remove(self, item_ids: Iterable[str]) -> list[str]:
        """Delete items; returns the ids that existed. Cached vectors stay for re-adds, and
        each item, with its photos, is kept until :meth:`restore` (or a later delete of the
        same id) so that a delete can be undone."""
        removed = []
        with self.transaction() as conn:
            for item_id in item_ids:
                _keep_removed(conn, item_id)
                conn.execute("DELETE FROM photos WHERE item_id = ?", (item_id,))
                if conn.execute("DELETE FROM items WHERE item_id = ?", (item_id,)).rowcount:
                    conn.execute(
                        "INSERT INTO changes (item_id, op) VALUES (?, 'remove')", (item_id,)
                    )
                    removed.append(item_id)
        return removed

    def restore(self, item_id: str) -> CatalogItem:
        """Bring back an item deleted by :meth:`remove`, with its photos (searchable again
        at once: their vectors stayed cached); an id in use again is a CatalogError."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT item, photos FROM removed_items WHERE item_id = ?", (item_id,)
            ).fetchone()
            if row is None:
                raise ItemNotFoundError(f"no deleted item {item_id!r} to bring back")
            if conn.execute("SELECT 1 FROM items WHERE item_id = ?", (item_id,)).fetchone():
                raise CatalogError(f"{item_id!r} is in the catalog again: nothing to undo")
            item = CatalogItem(**json.loads(row[0]))
            conn.executemany(
                "INSERT INTO photos (item_id, image_sha256, image_file, origin, added_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [tuple(photo) for photo in json.loads(row[1])],
            )
            self.upsert(conn, item)
            conn.execute("DELETE FROM removed_items WHERE item_id = ?", (item_id,))
        return item

    # -- photos ------------------------------------------------------------------------------

    def photos(self, item_id: str) -> list[ItemPhoto]:
        """The item's photos, the first added first (none for an unknown item)."""
        with self._lock:
            return _photos(self._conn, item_id)

    @staticmethod
    def put_photos(
        conn: sqlite3.Connection,
        item_id: str,
        photos: Sequence[tuple[str, str]],
        origin: PhotoOrigin,
    ) -> tuple[ItemPhoto, bool]:
        """Inside a transaction: ``photos`` ((sha256, image file) pairs) given to the item as
        ``origin``; an import's replace those of earlier imports. Returns the cover photo the
        item has afterwards (the one it had if that stays, else the first given) and whether
        its photos changed. More than MAX_PHOTOS is a CatalogError and changes nothing."""
        before = _photos(conn, item_id)
        given = dict(photos)
        stale = [
            p.image_sha256
            for p in before
            if origin is PhotoOrigin.IMPORT
            and p.origin is PhotoOrigin.IMPORT
            and p.image_sha256 not in given
        ]
        held = {p.image_sha256 for p in before}
        new = [(sha, file) for sha, file in given.items() if sha not in held]
        if len(before) - len(stale) + len(new) > MAX_PHOTOS:
            raise CatalogError(
                f"item {item_id!r} would have {len(before) - len(stale) + len(new)} photos; "
                f"it can hold {MAX_PHOTOS} (remove some first)"
            )
        conn.executemany(
            "DELETE FROM photos WHERE item_id = ? AND image_sha256 = ?",
            [(item_id, sha) for sha in stale],
        )
        now = time.time()
        conn.executemany(
            "INSERT INTO photos (item_id, image_sha256, image_file, origin, added_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(item_id, sha, file, origin, now) for sha, file in new],
        )
        after = _photos(conn, item_id)
        kept = _cover_hash(conn, item_id)
        cover = next((p for p in after if p.image_sha256 in kept), None)
        given_first = next(p for p in after if p.image_sha256 in given)
        return cover or given_first, bool(stale or new)

    @staticmethod
    def remove_photo(conn: sqlite3.Connection, item_id: str, image_sha256: str) -> ItemPhoto:
        """Inside a transaction: one photo taken from the item, a change logged for it;
        returns its cover photo afterwards (the next one when the cover went). An item keeps
        at least one photo (LastPhotoError)."""
        photos = _photos(conn, item_id)
        if not photos:
            raise ItemNotFoundError(f"no catalog item {item_id!r}")
        if image_sha256 not in {p.image_sha256 for p in photos}:
            raise ItemNotFoundError(f"item {item_id!r} has no photo {image_sha256}")
        if len(photos) == 1:
            raise LastPhotoError(f"{item_id!r} has only this photo: remove the item instead")
        conn.execute(
            "DELETE FROM photos WHERE item_id = ? AND image_sha256 = ?", (item_id, image_sha256)
        )
        rest = [p for p in photos if p.image_sha256 != image_sha256]
        kept = _cover_hash(conn, item_id)
        cover = next((p for p in rest if p.image_sha256 in kept), rest[0])
        conn.execute(
            "UPDATE items SET image_sha256 = ?, image_file = ?, updated_at = ? WHERE item_id = ?",
            (cover.image_sha256, cover.image_file, time.time(), item_id),
        )
        conn.execute("INSERT INTO changes (item_id, op) VALUES (?, 'upsert')", (item_id,))
        return cover

    def photos_per_item(self) -> dict[str, int]:
        """How many photos each item has."""
        with self._lock:
            rows = self._conn.execute("SELECT item_id, COUNT(*) FROM photos GROUP BY item_id")
            return {item_id: count for item_id, count in rows}

    def photo_counts(self) -> tuple[int, int]:
        """(items, photos) in the catalog."""
        with self._lock:
            (items,) = self._conn.execute("SELECT COUNT(*) FROM items").fetchone()
            (photos,) = self._conn.execute("SELECT COUNT(*) FROM photos").fetchone()
        return int(items), int(photos)

    # -- corrections ------------------------------------------------------------------------

    @staticmethod
    def log_correction(conn: sqlite3.Connection, correction: Correction) -> Correction:
        """Inside a transaction: the correction recorded; returns it with its id."""
        cursor = conn.execute(
            "INSERT INTO corrections (at, user, device_id, seq, item_id, photo_sha256) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                correction.at,
                correction.user,
                correction.device_id,
                correction.seq,
                correction.item_id,
                correction.photo_sha256,
            ),
        )
        return replace(correction, correction_id=int(cursor.lastrowid or 0))

    @staticmethod
    def mark_undone(conn: sqlite3.Connection, correction_id: int, *, user: str, at: float) -> None:
        conn.execute(
            "UPDATE corrections SET undone_at = ?, undone_by = ? WHERE correction_id = ?",
            (at, user, correction_id),
        )

    def correction(self, correction_id: int) -> Correction:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_CORRECTION_COLUMNS} FROM corrections WHERE correction_id = ?",
                (correction_id,),
            ).fetchall()
        if not rows:
            raise ItemNotFoundError(f"no correction {correction_id}")
        return Correction(*rows[0])

    def corrections(self, *, item_id: str | None = None, limit: int = 100) -> list[Correction]:
        """The newest corrections (of ``item_id``, when given), newest first."""
        where, params = ("WHERE item_id = ?", (item_id,)) if item_id is not None else ("", ())
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_CORRECTION_COLUMNS} FROM corrections {where} "
                "ORDER BY correction_id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [Correction(*row) for row in rows]

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
        _log_items_showing(conn, image_sha256)

    def vectors(
        self, model_id: str, recipe_id: str, item_ids: Sequence[str] | None = None
    ) -> tuple[list[CatalogItem], list[np.ndarray]]:
        """Items (all, or those of ``item_ids``) that have vectors of ``model_id`` and
        ``recipe_id``, each with one matrix: the rows of its indexed photos
        (:func:`indexed_photos`), first photo first.

        Items featurized only by other models are left out: they are not searchable
        with this model until re-indexed (a photo not yet featurized adds no rows).
        """
        columns = ", ".join("i." + c for c in _ITEM_COLUMNS.split(", "))
        query = (
            f"SELECT {columns}, p.origin, v.count, v.dim, v.data FROM items i "
            "JOIN photos p ON p.item_id = i.item_id "
            "JOIN vectors v ON v.image_sha256 = p.image_sha256 "
            "WHERE v.model_id = ? AND v.recipe = ?"
        )
        params: tuple[object, ...] = (model_id, recipe_id)
        if item_ids is not None:
            query += f" AND i.item_id IN ({','.join('?' * len(item_ids))})"
            params += tuple(item_ids)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY i.item_id, p.rowid", params).fetchall()
        items: list[CatalogItem] = []
        photos: list[list[tuple[PhotoOrigin, np.ndarray]]] = []
        for row in rows:
            if not items or items[-1].item_id != row[0]:
                items.append(_item(row[:7]))
                photos.append([])
            origin, count, dim, data = row[7:]
            matrix = np.frombuffer(data, dtype=np.float32).reshape(count, dim)
            photos[-1].append((PhotoOrigin(origin), matrix))
        return items, [np.concatenate(indexed_photos(item_photos)) for item_photos in photos]

    def photo_vectors(
        self, model_id: str, recipe_id: str, hashes: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """The cached vectors of each photo (by sha256) that has some of this model and
        recipe: the rows the index holds for it."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                rows = self._conn.execute(
                    "SELECT image_sha256, count, dim, data FROM vectors WHERE model_id = ? "
                    f"AND recipe = ? AND image_sha256 IN ({','.join('?' * len(chunk))})",
                    (model_id, recipe_id, *chunk),
                ).fetchall()
                for sha, count, dim, data in rows:
                    found[sha] = np.frombuffer(data, dtype=np.float32).reshape(count, dim)
        return found

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

    def photos_local_features(
        self, item_ids: Sequence[str], method: str
    ) -> dict[str, list[tuple[str, LocalFeatures]]]:
        """The keypoints of each item's photos, by item id: (photo sha256, keypoints), first
        photo first; items unknown or without keypoints of ``method`` are left out. One query
        per 500 items, each stored photo decoded once however many of the items show it."""
        wanted = list(dict.fromkeys(item_ids))
        rows = []
        with self._lock:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                rows += self._conn.execute(
                    "SELECT p.item_id, f.image_sha256, f.xy, f.descriptors FROM photos p "
                    "JOIN local_features f ON f.image_sha256 = p.image_sha256 "
                    f"WHERE f.method = ? AND p.item_id IN ({','.join('?' * len(chunk))}) "
                    "ORDER BY p.rowid",
                    (method, *chunk),
                ).fetchall()
        decoded: dict[str, LocalFeatures] = {}
        found: dict[str, list[tuple[str, LocalFeatures]]] = {}
        for item_id, sha, xy, descriptors in rows:
            if sha not in decoded:
                decoded[sha] = LocalFeatures.from_blobs(xy, descriptors)
            found.setdefault(item_id, []).append((sha, decoded[sha]))
        return found

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
        """The stored image file (relative to the images folder) of each sha256 a photo
        shows; hashes no photo shows are left out."""
        found: dict[str, str] = {}
        wanted = list(dict.fromkeys(hashes))
        with self._lock:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                rows = self._conn.execute(
                    "SELECT image_sha256, image_file FROM photos "
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
        _log_items_showing(conn, image_sha256)

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


def _match_expression(text: str) -> str:
    """An FTS5 query: every word of ``text`` as a prefix, quoted (so no word is syntax)."""
    words = text.split()
    return " ".join('"' + word.replace('"', '""') + '"*' for word in words) or '""'


def _photos(conn: sqlite3.Connection, item_id: str) -> list[ItemPhoto]:
    rows = conn.execute(
        "SELECT item_id, image_sha256, image_file, origin, added_at FROM photos "
        "WHERE item_id = ? ORDER BY rowid",
        (item_id,),
    ).fetchall()
    return [ItemPhoto(i, sha, file, PhotoOrigin(origin), at) for i, sha, file, origin, at in rows]


def _keep_removed(conn: sqlite3.Connection, item_id: str) -> None:
    """The item and its photos, kept for :meth:`CatalogStore.restore`."""
    rows = conn.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE item_id = ?", (item_id,))
    for row in rows.fetchall():
        photos = [
            (p.item_id, p.image_sha256, p.image_file, p.origin.value, p.added_at)
            for p in _photos(conn, item_id)
        ]
        conn.execute(
            "INSERT OR REPLACE INTO removed_items (item_id, removed_at, item, photos) "
            "VALUES (?, ?, ?, ?)",
            (item_id, time.time(), json.dumps(asdict(_item(row))), json.dumps(photos)),
        )


def _cover_hash(conn: sqlite3.Connection, item_id: str) -> set[str]:
    """The item's cover photo's sha256, as a set (empty for an item not stored yet)."""
    rows = conn.execute("SELECT image_sha256 FROM items WHERE item_id = ?", (item_id,))
    return {sha for (sha,) in rows}


def _log_items_showing(conn: sqlite3.Connection, image_sha256: str) -> None:
    """A change for each item with this photo: what a worker holds of it is out of date."""
    conn.execute(
        "INSERT INTO changes (item_id, op) "
        "SELECT item_id, 'upsert' FROM photos WHERE image_sha256 = ?",
        (image_sha256,),
    )


def _item(row: tuple) -> CatalogItem:
    item_id, name, price, currency, available, sha, image_file = row
    return CatalogItem(item_id, name, price, currency, bool(available), sha, image_file)
