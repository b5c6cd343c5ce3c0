"""The catalog and its per-model vector cache, on SQLite (one machine) or PostgreSQL
(past one machine).

The tables are :mod:`edgelens.catalog.schema`; what differs between the engines is in
:mod:`edgelens.catalog.dialects`. Reads take a pooled connection each, so threads read
side by side; every change is one :class:`CatalogWrite` transaction that bumps the
catalog version and logs the items it touched in the change log workers follow.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    delete,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from edgelens.catalog import schema
from edgelens.catalog.dialects import (
    ChangeListener,
    Dialect,
    catalog_url,
    dialect_for,
    next_version,
)
from edgelens.catalog.models import (
    MAX_PHOTOS,
    CatalogItem,
    Correction,
    ItemPhoto,
    PhotoOrigin,
    indexed_photos,
)
from edgelens.catalog.schema import (
    changes,
    correction_views,
    corrections,
    items,
    local_features,
    meta,
    photos,
)
from edgelens.errors import CatalogError, ItemNotFoundError, LastPhotoError
from edgelens.featurizer.local_features import LocalFeatures

_CHUNK = 500  # values bound in one IN (...) list; SQLite allows 999 on older builds
_ITEM = tuple(items.c)[:7]  # the CatalogItem fields, in its order
_V = TypeVar("_V")


class CatalogStore:
    """Thread-safe access to one catalog database: a SQLite file or a PostgreSQL URL."""

    def __init__(self, location: str | Path) -> None:
        url = catalog_url(location)
        self._dialect = dialect_for(url)
        self.engine_name = self._dialect.name
        self.location = url.render_as_string(hide_password=True)
        self._counted = (-1, 0)  # (catalog version, items then)
        self._count_lock = threading.Lock()
        with _errors(f"cannot open catalog database {self.location}"):
            self._engine = self._dialect.engine()
            self._writer = self._engine.execution_options(catalog_write=True)
            with self._writer.begin() as conn:
                self._dialect.lock_schema(conn)
                schema.metadata.create_all(conn)
                conn.execute(
                    self._dialect.insert(meta)
                    .values(key="version", value="0")
                    .on_conflict_do_nothing()
                )
                self._dialect.prepare(conn)
                _photos_from_items(conn, self._dialect)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with _errors("catalog read failed"), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[CatalogWrite]:
        """One atomic change: bumps the catalog version (readers notice; on PostgreSQL the
        bump also queues writers, so change numbers commit in order) and tells followers."""
        with _errors("catalog write failed"), self._writer.begin() as conn:
            next_version(conn)
            yield CatalogWrite(conn, self._dialect)
            self._dialect.notify(conn)

    @property
    def notifies_followers(self) -> bool:
        """Whether committed changes reach followers from the database itself."""
        return self._dialect.notifies

    def change_listener(self, on_change: Callable[[], None]) -> ChangeListener | None:
        """A listener calling ``on_change`` on each committed change, where the database
        sends them (PostgreSQL); None for SQLite, whose writers announce changes on Redis
        (:func:`edgelens.catalog.notify.notify_catalog_changed`)."""
        return self._dialect.listener(on_change)

    @property
    def version(self) -> int:
        with self._read() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == "version")).scalar()
        return int(value or 0)

    # -- items -------------------------------------------------------------------------------

    def get(self, item_id: str) -> CatalogItem:
        with self._read() as conn:
            item = _get(conn, item_id)
        if item is None:
            raise ItemNotFoundError.of(item_id)
        return item

    def items(self) -> list[CatalogItem]:
        with self._read() as conn:
            rows = conn.execute(select(*_ITEM).order_by(items.c.item_id)).all()
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
        otherwise the items whose name has words starting with each of its words (in the
        order the engine's name index keeps: see :mod:`edgelens.catalog.dialects`)."""
        key = items.c.item_id
        with self._read() as conn:
            if text and not self._ids_start_with(conn, text):
                cursor = before or after
                statement = self._dialect.name_search(conn, text.split(), cursor, bool(before))
            else:
                statement = select(*items.c).where(*_id_range(text, after, before))
                statement = statement.order_by(key.desc() if before else key)
            if available is not None:
                statement = statement.where(items.c.available == available)
            rows = conn.execute(statement.limit(limit + 1)).all()
        found = [_item(row) for row in rows]
        return found[::-1] if before else found

    @staticmethod
    def _ids_start_with(conn: Connection, text: str) -> bool:
        key = items.c.item_id
        row = conn.execute(select(key).where(key >= text, key < text + "\uffff").limit(1))
        return row.first() is not None

    def __len__(self) -> int:
        """How many items; counted again only after a change (a count of a million rows
        is a scan)."""
        with self._count_lock:
            version = self.version
            if self._counted[0] != version:
                with self._read() as conn:
                    count = conn.execute(select(func.count()).select_from(items)).scalar()
                self._counted = (version, int(count or 0))
            return self._counted[1]

    def remove(self, item_ids: Iterable[str]) -> list[str]:
        """Delete items; returns the ids that existed. Cached vectors stay for re-adds, and
        each item, with its photos, is kept until :meth:`restore` (or a later delete of the
        same id) so that a delete can be undone."""
        removed = []
        with self.transaction() as write:
            for item_id in item_ids:
                if write.remove(item_id):
                    removed.append(item_id)
        return removed

    def restore(self, item_id: str) -> CatalogItem:
        """Bring back an item deleted by :meth:`remove`, with its photos (searchable again
        at once: their vectors stayed cached); an id in use again is a CatalogError."""
        with self.transaction() as write:
            return write.restore(item_id)

    # -- photos ------------------------------------------------------------------------------

    def photos(self, item_id: str) -> list[ItemPhoto]:
        """The item's photos, the first added first (none for an unknown item)."""
        with self._read() as conn:
            return _photos(conn, item_id)

    def photos_per_item(self) -> dict[str, int]:
        """How many photos each item has."""
        with self._read() as conn:
            rows = conn.execute(select(photos.c.item_id, func.count()).group_by(photos.c.item_id))
            return {item_id: count for item_id, count in rows}

    def photo_counts(self) -> tuple[int, int]:
        """(items, photos) in the catalog."""
        with self._read() as conn:
            count_items = conn.execute(select(func.count()).select_from(items)).scalar()
            count_photos = conn.execute(select(func.count()).select_from(photos)).scalar()
        return int(count_items or 0), int(count_photos or 0)

    # -- corrections ------------------------------------------------------------------------

    def correction(self, correction_id: int) -> Correction:
        with self._read() as conn:
            row = conn.execute(
                select(*corrections.c).where(corrections.c.correction_id == correction_id)
            ).first()
        if row is None:
            raise ItemNotFoundError(f"no correction {correction_id}")
        return Correction(*row)

    def corrections(self, *, item_id: str | None = None, limit: int = 100) -> list[Correction]:
        """The newest corrections (of ``item_id``, when given), newest first."""
        statement = select(*corrections.c)
        if item_id is not None:
            statement = statement.where(corrections.c.item_id == item_id)
        with self._read() as conn:
            rows = conn.execute(
                statement.order_by(corrections.c.correction_id.desc()).limit(limit)
            ).all()
        return [Correction(*row) for row in rows]

    def corrected_views(self, limit: int) -> list[tuple[int, CatalogItem | None]]:
        """The newest ``limit`` corrections still standing whose view is kept, each with
        the item it names (None: something not in the catalog); corrections of items since
        removed are left out."""
        c = corrections.c
        statement = (
            select(c.correction_id, *_ITEM)
            .join_from(
                corrections,
                correction_views,
                correction_views.c.correction_id == c.correction_id,
            )
            .outerjoin(items, items.c.item_id == c.item_id)
            .where(c.undone_at.is_(None), c.item_id.is_(None) | items.c.item_id.is_not(None))
            .order_by(c.correction_id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(statement).all()
        return [(row[0], None if row[1] is None else _item(row[1:])) for row in rows]

    def correction_views(
        self, correction_ids: Sequence[int]
    ) -> dict[int, tuple[bytes, bytes | None]]:
        """The kept view (JPEG) and frame vectors (a message, or None) of these
        corrections, by correction id."""
        v = correction_views.c
        found: dict[int, tuple[bytes, bytes | None]] = {}
        with self._read() as conn:
            for chunk in _chunks(list(correction_ids)):
                rows = conn.execute(
                    select(v.correction_id, v.view, v.vectors).where(v.correction_id.in_(chunk))
                )
                for cid, view, vectors in rows:
                    found[cid] = (bytes(view), None if vectors is None else bytes(vectors))
        return found

    # -- vector cache ------------------------------------------------------------------------

    def cached_hashes(self, model_id: str, recipe_id: str, hashes: Iterable[str]) -> set[str]:
        sha = schema.vectors.c.image_sha256
        mine = (schema.vectors.c.model_id == model_id, schema.vectors.c.recipe == recipe_id)
        found: set[str] = set()
        with self._read() as conn:
            for chunk in _chunks(list(set(hashes))):
                found.update(conn.execute(select(sha).where(*mine, sha.in_(chunk))).scalars())
        return found

    def vectors(
        self, model_id: str, recipe_id: str, item_ids: Sequence[str] | None = None
    ) -> tuple[list[CatalogItem], list[np.ndarray]]:
        """Items (all, or those of ``item_ids``) that have vectors of ``model_id`` and
        ``recipe_id``, each with one matrix: the rows of its indexed photos
        (:func:`indexed_photos`), first photo first.

        Items featurized only by other models are left out: they are not searchable
        with this model until re-indexed (a photo not yet featurized adds no rows).
        """
        v = schema.vectors.c
        statement = (
            select(*_ITEM, photos.c.origin, v.count, v.dim, v.data)
            .join_from(items, photos, photos.c.item_id == items.c.item_id)
            .join(schema.vectors, v.image_sha256 == photos.c.image_sha256)
            .where(v.model_id == model_id, v.recipe == recipe_id)
            .order_by(items.c.item_id, photos.c.position)
        )
        if item_ids is not None:
            statement = statement.where(items.c.item_id.in_(list(item_ids)))
        with self._read() as conn:
            rows = conn.execute(statement).all()
        found: list[CatalogItem] = []
        held: list[list[tuple[PhotoOrigin, np.ndarray]]] = []
        for row in rows:
            if not found or found[-1].item_id != row[0]:
                found.append(_item(row[:7]))
                held.append([])
            origin, count, dim, data = row[7:]
            held[-1].append((PhotoOrigin(origin), _matrix(data, count, dim)))
        return found, [np.concatenate(indexed_photos(item_photos)) for item_photos in held]

    def photo_vectors(
        self, model_id: str, recipe_id: str, hashes: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """The cached vectors of each photo (by sha256) that has some of this model and
        recipe: the rows the index holds for it."""
        v = schema.vectors.c
        found: dict[str, np.ndarray] = {}
        with self._read() as conn:
            for chunk in _chunks(list(dict.fromkeys(hashes))):
                rows = conn.execute(
                    select(v.image_sha256, v.count, v.dim, v.data).where(
                        v.model_id == model_id, v.recipe == recipe_id, v.image_sha256.in_(chunk)
                    )
                )
                for sha, count, dim, data in rows:
                    found[sha] = _matrix(data, count, dim)
        return found

    def models(self) -> dict[tuple[str, str], int]:
        """How many images have cached vectors, per (model id, recipe)."""
        v = schema.vectors.c
        with self._read() as conn:
            rows = conn.execute(
                select(v.model_id, v.recipe, func.count()).group_by(v.model_id, v.recipe)
            )
            return {(model_id, recipe): count for model_id, recipe, count in rows}

    # -- keypoints for spatial verification ------------------------------------------------

    def has_local_features(self, method: str, image_sha256: str) -> bool:
        f = local_features.c
        with self._read() as conn:
            row = conn.execute(
                select(literal(1)).where(f.image_sha256 == image_sha256, f.method == method)
            ).first()
        return row is not None

    def photos_local_features(
        self, item_ids: Sequence[str], method: str
    ) -> dict[str, list[tuple[str, LocalFeatures]]]:
        """The keypoints of each item's photos that the answer searches
        (:func:`indexed_photos`), by item id: (photo sha256, keypoints), first photo first;
        items unknown or without keypoints of ``method`` are left out. Two queries per 500
        items, each stored photo decoded once however many of the items show it."""
        f = local_features.c
        shown: list[tuple[str, str]] = []  # (item id, photo sha256), first photo first
        blobs: dict[str, tuple[bytes, bytes]] = {}
        with self._read() as conn:
            # Two key lookups, not a join: a planner that hashes the keypoint table reads
            # every photo's blobs to find ten.
            for chunk in _chunks(list(dict.fromkeys(item_ids))):
                rows = conn.execute(
                    select(photos.c.item_id, photos.c.origin, photos.c.image_sha256)
                    .where(photos.c.item_id.in_(chunk))
                    .order_by(photos.c.item_id, photos.c.position)
                ).all()
                for _, held in itertools.groupby(rows, key=lambda row: row[0]):
                    shown += indexed_photos(
                        [(PhotoOrigin(origin), (item_id, sha)) for item_id, origin, sha in held]
                    )
            for chunk in _chunks(list(dict.fromkeys(sha for _, sha in shown))):
                rows = conn.execute(
                    select(f.image_sha256, f.xy, f.descriptors).where(
                        f.method == method, f.image_sha256.in_(chunk)
                    )
                )
                blobs.update({sha: (bytes(xy), bytes(kp)) for sha, xy, kp in rows})
        decoded: dict[str, LocalFeatures] = {}
        found: dict[str, list[tuple[str, LocalFeatures]]] = {}
        for item_id, sha in shown:
            if sha not in blobs:
                continue
            if sha not in decoded:
                decoded[sha] = LocalFeatures.from_blobs(*blobs[sha])
            found.setdefault(item_id, []).append((sha, decoded[sha]))
        return found

    def local_features_counts(self) -> dict[str, int]:
        """How many photos have stored keypoints, per extraction method."""
        f = local_features.c
        with self._read() as conn:
            rows = conn.execute(select(f.method, func.count()).group_by(f.method))
            return {method: count for method, count in rows}

    def local_features_rows(
        self, method: str, *, after: str = "", limit: int = _CHUNK
    ) -> list[tuple[str, bytes, bytes]]:
        """(image sha256, xy blob, descriptors blob) of up to ``limit`` photos with keypoints
        of ``method``, by sha256 after ``after``: a page of a walk that rows written
        meanwhile do not disturb."""
        f = local_features.c
        with self._read() as conn:
            rows = conn.execute(
                select(f.image_sha256, f.xy, f.descriptors)
                .where(f.method == method, f.image_sha256 > after)
                .order_by(f.image_sha256)
                .limit(limit)
            )
            return [(sha, bytes(xy), bytes(descriptors)) for sha, xy, descriptors in rows]

    def image_files(self, hashes: Sequence[str]) -> dict[str, str]:
        """The stored image file (relative to the images folder) of each sha256 a photo
        shows; hashes no photo shows are left out."""
        found: dict[str, str] = {}
        with self._read() as conn:
            for chunk in _chunks(list(dict.fromkeys(hashes))):
                rows = conn.execute(
                    select(photos.c.image_sha256, photos.c.image_file).where(
                        photos.c.image_sha256.in_(chunk)
                    )
                )
                found.update({sha: file for sha, file in rows})
        return found

    # -- copying between databases ---------------------------------------------------------

    def row_counts(self) -> dict[str, int]:
        """Rows per table (a copy's check)."""
        with self._read() as conn:
            return {
                table.name: int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
                for table in schema.TABLES
            }

    def dump(self, table: Table, *, batch: int) -> Iterator[list[dict[str, object]]]:
        """Every row of ``table``, ``batch`` at a time, in key order."""
        with self._read() as conn:
            result = conn.execution_options(yield_per=batch).execute(
                select(table).order_by(*table.primary_key.columns)
            )
            for rows in result.mappings().partitions():
                yield [dict(row) for row in rows]

    def load(self, table: Table, rows: Sequence[dict[str, object]]) -> None:
        """Rows dumped from another catalog, as they are (ids included), in one
        transaction; ``meta`` rows replace this catalog's."""
        statement = self._dialect.insert(table)
        if table is meta:
            statement = statement.on_conflict_do_update(
                index_elements=[meta.c.key], set_={"value": statement.excluded.value}
            )
        with _errors(f"copy into {table.name} failed"), self._writer.begin() as conn:
            conn.execute(statement, list(rows))

    def continue_counters(self) -> None:
        """After :meth:`load`: new changes and corrections are numbered past the copied."""
        with _errors("catalog counters not set"), self._writer.begin() as conn:
            self._dialect.after_copy(conn)

    # -- change log ----------------------------------------------------------------------

    @property
    def last_change(self) -> int:
        """Sequence number of the newest change; a follower resumes after it."""
        with self._read() as conn:
            return int(conn.execute(select(func.coalesce(func.max(changes.c.seq), 0))).scalar())

    def changes_since(self, seq: int, limit: int = 10_000) -> list[tuple[int, str, str]]:
        """(seq, item id, op) of changes after ``seq``, oldest first.

        The log is written in the same transaction as the change it records, so a
        follower that reads it never misses one, whatever happened to notifications.
        """
        c = changes.c
        with self._read() as conn:
            rows = conn.execute(
                select(c.seq, c.item_id, c.op).where(c.seq > seq).order_by(c.seq).limit(limit)
            )
            return [(int(s), item_id, op) for s, item_id, op in rows]


class CatalogWrite:
    """The changes of one transaction (:meth:`CatalogStore.transaction`); each logs the
    items it touched in the change log, in the same transaction."""

    def __init__(self, conn: Connection, dialect: Dialect) -> None:
        self._conn = conn
        self.connection = conn  # for maintenance the methods do not cover (and tests)
        self._insert = dialect.insert

    def get(self, item_id: str) -> CatalogItem | None:
        """The item as this transaction sees it, or None."""
        return _get(self._conn, item_id)

    def photos(self, item_id: str) -> list[ItemPhoto]:
        """The item's photos as this transaction sees them, first added first."""
        return _photos(self._conn, item_id)

    def upsert(self, item: CatalogItem) -> bool:
        """Insert or replace ``item``; True if it was new. Its cover photo is one of its
        photos (added, as imported, when it was not)."""
        conn = self._conn
        existed = _get(conn, item.item_id) is not None
        row = asdict(item) | {"updated_at": time.time()}
        conn.execute(
            self._insert(items)
            .values(row)
            .on_conflict_do_update(
                index_elements=[items.c.item_id],
                set_={k: v for k, v in row.items() if k != "item_id"},
            )
        )
        held = _photos(conn, item.item_id)
        if item.image_sha256 not in {p.image_sha256 for p in held}:
            self._add_photos(
                item.item_id, [(item.image_sha256, item.image_file)], PhotoOrigin.IMPORT, held
            )
        self._log([item.item_id], "upsert")
        return not existed

    def remove(self, item_id: str) -> bool:
        """Delete one item, keeping it (with its photos) for :meth:`restore`; False if
        there was no such item."""
        conn = self._conn
        item = _get(conn, item_id)
        if item is None:
            return False
        kept = [
            (p.item_id, p.image_sha256, p.image_file, p.origin.value, p.added_at)
            for p in _photos(conn, item_id)
        ]
        row = {
            "item_id": item_id,
            "removed_at": time.time(),
            "item": json.dumps(asdict(item)),
            "photos": json.dumps(kept),
        }
        conn.execute(
            self._insert(schema.removed_items)
            .values(row)
            .on_conflict_do_update(index_elements=["item_id"], set_=row)
        )
        conn.execute(delete(photos).where(photos.c.item_id == item_id))
        conn.execute(delete(items).where(items.c.item_id == item_id))
        self._log([item_id], "remove")
        return True

    def restore(self, item_id: str) -> CatalogItem:
        conn = self._conn
        removed = schema.removed_items
        row = conn.execute(
            select(removed.c.item, removed.c.photos).where(removed.c.item_id == item_id)
        ).first()
        if row is None:
            raise ItemNotFoundError(f"no deleted item {item_id!r} to bring back")
        if _get(conn, item_id) is not None:
            raise CatalogError(f"{item_id!r} is in the catalog again: nothing to undo")
        item = CatalogItem(**json.loads(row[0]))
        kept = json.loads(row[1])
        conn.execute(
            insert(photos),
            [
                {
                    "item_id": i,
                    "image_sha256": sha,
                    "image_file": file,
                    "origin": origin,
                    "added_at": at,
                    "position": position,
                }
                for position, (i, sha, file, origin, at) in enumerate(kept, start=1)
            ],
        )
        self.upsert(item)
        conn.execute(delete(removed).where(removed.c.item_id == item_id))
        return item

    def put_photos(
        self, item_id: str, given_photos: Sequence[tuple[str, str]], origin: PhotoOrigin
    ) -> tuple[ItemPhoto, bool]:
        """``given_photos`` ((sha256, image file) pairs) given to the item as ``origin``; an
        import's replace those of earlier imports. Returns the cover photo the item has
        afterwards (the one it had if that stays, else the first given) and whether its
        photos changed. More than MAX_PHOTOS is a CatalogError and changes nothing."""
        conn = self._conn
        before = _photos(conn, item_id)
        given = dict(given_photos)
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
        if stale:
            conn.execute(
                delete(photos).where(photos.c.item_id == item_id, photos.c.image_sha256.in_(stale))
            )
        self._add_photos(item_id, new, origin, before)
        after = _photos(conn, item_id)
        item = _get(conn, item_id)
        cover = next((p for p in after if item and p.image_sha256 == item.image_sha256), None)
        given_first = next(p for p in after if p.image_sha256 in given)
        return cover or given_first, bool(stale or new)

    def remove_photo(self, item_id: str, image_sha256: str) -> ItemPhoto:
        """One photo taken from the item, a change logged for it; returns its cover photo
        afterwards (the next one when the cover went). An item keeps at least one photo
        (LastPhotoError)."""
        conn = self._conn
        held = _photos(conn, item_id)
        if not held:
            raise ItemNotFoundError.of(item_id)
        if image_sha256 not in {p.image_sha256 for p in held}:
            raise ItemNotFoundError(f"item {item_id!r} has no photo {image_sha256}")
        if len(held) == 1:
            raise LastPhotoError(f"{item_id!r} has only this photo: remove the item instead")
        conn.execute(
            delete(photos).where(photos.c.item_id == item_id, photos.c.image_sha256 == image_sha256)
        )
        rest = [p for p in held if p.image_sha256 != image_sha256]
        item = _get(conn, item_id)
        cover = next((p for p in rest if item and p.image_sha256 == item.image_sha256), rest[0])
        conn.execute(
            update(items)
            .where(items.c.item_id == item_id)
            .values(
                image_sha256=cover.image_sha256, image_file=cover.image_file, updated_at=time.time()
            )
        )
        self._log([item_id], "upsert")
        return cover

    def log_correction(
        self, correction: Correction, *, view: bytes | None = None, vectors: bytes | None = None
    ) -> Correction:
        """The correction recorded, with the view its frame came with (a JPEG, when kept)
        and the frame's vectors (a feature message without the view); returns it with its
        id."""
        row = asdict(correction)
        del row["correction_id"]
        result = self._conn.execute(insert(corrections).values(row))
        logged = replace(correction, correction_id=int(result.inserted_primary_key[0]))
        if view is not None:
            self._conn.execute(
                insert(correction_views).values(
                    correction_id=logged.correction_id, view=view, vectors=vectors
                )
            )
        return logged

    def mark_undone(self, correction_id: int, *, user: str, at: float) -> None:
        """The correction undone by ``user`` at ``at``: the log keeps it, its kept view and
        vectors go."""
        self._conn.execute(
            delete(correction_views).where(correction_views.c.correction_id == correction_id)
        )
        self._conn.execute(
            update(corrections)
            .where(corrections.c.correction_id == correction_id)
            .values(undone_at=at, undone_by=user)
        )

    def put_vectors(
        self, image_sha256: str, model_id: str, recipe_id: str, matrix: np.ndarray
    ) -> None:
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        row = {
            "image_sha256": image_sha256,
            "model_id": model_id,
            "recipe": recipe_id,
            "count": matrix.shape[0],
            "dim": matrix.shape[1],
            "data": matrix.tobytes(),
        }
        self._conn.execute(
            self._insert(schema.vectors)
            .values(row)
            .on_conflict_do_update(
                index_elements=["image_sha256", "model_id", "recipe"],
                set_={k: row[k] for k in ("count", "dim", "data")},
            )
        )
        # Items showing this image become searchable with this model: a change for them.
        self._log_items_showing(image_sha256)

    def put_local_features(self, image_sha256: str, method: str, features: LocalFeatures) -> None:
        """Store ``features`` in their compact form (:meth:`LocalFeatures.to_blobs`)."""
        xy, descriptors = features.to_blobs()
        row = {"image_sha256": image_sha256, "method": method, "xy": xy, "descriptors": descriptors}
        self._conn.execute(
            self._insert(local_features)
            .values(row)
            .on_conflict_do_update(
                index_elements=["image_sha256", "method"],
                set_={"xy": xy, "descriptors": descriptors},
            )
        )

    def replace_local_features(
        self,
        image_sha256: str,
        old_method: str,
        method: str,
        features: LocalFeatures | None,
    ) -> None:
        """The photo's keypoints of ``old_method`` deleted, ``features`` (when given) stored
        as ``method``, and a change logged for the items showing it, so that a worker
        holding their keypoints reads them again."""
        f = local_features.c
        self._conn.execute(
            delete(local_features).where(f.image_sha256 == image_sha256, f.method == old_method)
        )
        if features is not None:
            self.put_local_features(image_sha256, method, features)
        self._log_items_showing(image_sha256)

    def _add_photos(
        self,
        item_id: str,
        new: Sequence[tuple[str, str]],
        origin: PhotoOrigin,
        held: Sequence[ItemPhoto],
    ) -> None:
        """``new`` photos after the item's ``held`` ones, in order."""
        if not new:
            return
        start = 1 + max(
            (
                self._conn.execute(
                    select(func.coalesce(func.max(photos.c.position), 0)).where(
                        photos.c.item_id == item_id
                    )
                ).scalar()
                or 0,
                len(held),
            )
        )
        now = time.time()
        self._conn.execute(
            insert(photos),
            [
                {
                    "item_id": item_id,
                    "image_sha256": sha,
                    "image_file": file,
                    "origin": origin.value,
                    "added_at": now,
                    "position": start + offset,
                }
                for offset, (sha, file) in enumerate(new)
            ],
        )

    def _log(self, item_ids: Sequence[str], op: str) -> None:
        self._conn.execute(insert(changes), [{"item_id": i, "op": op} for i in item_ids])

    def _log_items_showing(self, image_sha256: str) -> None:
        """A change for each item with this photo: what a worker holds of it is out of date."""
        self._conn.execute(
            insert(changes).from_select(
                ["item_id", "op"],
                select(photos.c.item_id, literal("upsert")).where(
                    photos.c.image_sha256 == image_sha256
                ),
            )
        )


@contextmanager
def _errors(message: str) -> Iterator[None]:
    """The database's errors as CatalogError (ours pass as they are)."""
    try:
        yield
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc  # the driver's own words, when it has them
        raise CatalogError(f"{message}: {cause.__class__.__name__}: {cause}") from exc


def _chunks(values: list[_V]) -> Iterator[list[_V]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _matrix(data: bytes, count: int, dim: int) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32).reshape(count, dim)


def _get(conn: Connection, item_id: str) -> CatalogItem | None:
    row = conn.execute(select(*_ITEM).where(items.c.item_id == item_id)).first()
    return None if row is None else _item(row)


def _photos(conn: Connection, item_id: str) -> list[ItemPhoto]:
    p = photos.c
    rows = conn.execute(
        select(p.item_id, p.image_sha256, p.image_file, p.origin, p.added_at)
        .where(p.item_id == item_id)
        .order_by(p.position)
    )
    return [ItemPhoto(i, sha, file, PhotoOrigin(origin), at) for i, sha, file, origin, at in rows]


def _photos_from_items(conn: Connection, dialect: Dialect) -> None:
    """A catalog from before photos: each item's one image becomes its first photo (once)."""
    if conn.execute(select(meta.c.key).where(meta.c.key == "photos")).first() is not None:
        return
    i = items.c
    conn.execute(
        dialect.insert(photos)
        .from_select(
            ["item_id", "image_sha256", "image_file", "origin", "added_at", "position"],
            select(
                i.item_id, i.image_sha256, i.image_file, literal("import"), i.updated_at, literal(1)
            ).where(true()),  # SQLite reads an ON CONFLICT after a bare SELECT as a join
        )
        .on_conflict_do_nothing()
    )
    conn.execute(insert(meta).values(key="photos", value="1"))


def _item(row: Sequence) -> CatalogItem:
    item_id, name, price, currency, available, sha, image_file = row[:7]
    return CatalogItem(item_id, name, price, currency, bool(available), sha, image_file)


def _id_range(prefix: str, after: str, before: str) -> list[ColumnElement[bool]]:
    """One lower and one upper bound on the item id: the page after ``after`` (or before
    ``before``) among the ids starting with ``prefix`` ("": all). One bound each way, as
    an engine seeks its index by one: given both ``> after`` and ``>= prefix``, SQLite
    sought by the first and walked every id before the prefix."""
    key = items.c.item_id
    end = prefix + "\uffff"
    if before:
        upper = key < (min(before, end) if prefix else before)
        return [key >= prefix, upper] if prefix else [upper]
    lower = key > after if after >= prefix else key >= prefix
    return [lower, key < end] if prefix else [lower]
