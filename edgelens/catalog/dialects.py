"""What differs between the catalog's two database engines, in one place.

SQLite is the embedded default (one file, one machine); PostgreSQL is the catalog of a
deployment past one machine: workers elsewhere read it over the network and follow its
changes by LISTEN/NOTIFY. Everything else the store does is engine-neutral SQLAlchemy
Core over :mod:`edgelens.catalog.schema`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Select,
    Table,
    cast,
    column,
    create_engine,
    event,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from edgelens.catalog.schema import changes, corrections, items, meta
from edgelens.errors import CatalogError

logger = logging.getLogger(__name__)

# The NOTIFY channel a PostgreSQL catalog's write transactions signal on commit.
CHANGE_CHANNEL = "edgelens_catalog"
_SCHEMA_LOCK = 0x6564676C  # advisory lock key: one process creates or migrates the schema


def catalog_url(location: str | Path) -> URL:
    """A catalog location as a SQLAlchemy URL: a file path (SQLite), ``sqlite:///…`` or
    ``postgresql://…`` (driven by psycopg 3)."""
    if isinstance(location, Path) or "://" not in location:
        return URL.create("sqlite", database=str(location))
    try:
        url = make_url(location)
    except ArgumentError as exc:
        raise CatalogError(f"not a catalog URL: {exc}") from exc
    if url.get_backend_name() == "postgresql":
        return url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite" and url.database:
        return url
    raise CatalogError(
        f"catalog URL {url.render_as_string()!r}: use a file path, sqlite:///… or postgresql://…"
    )


class Dialect:
    """The engine-specific part of the catalog store."""

    name = ""
    notifies = False  # the database tells followers of each commit (LISTEN/NOTIFY)

    def __init__(self, url: URL) -> None:
        self.url = url

    def engine(self) -> Engine:
        raise NotImplementedError

    def insert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """INSERT with ON CONFLICT clauses (both engines spell them alike)."""
        raise NotImplementedError

    def lock_schema(self, conn: Connection) -> None:
        """Inside the schema transaction: keep other processes out of it."""

    def prepare(self, conn: Connection) -> None:
        """Inside the schema transaction: what this engine adds to the tables."""

    def name_search(self, conn: Connection, words: list[str], cursor: str, before: bool) -> Select:
        """Items whose name has a word starting with each of ``words``: a keyset page
        after (or before) item ``cursor``, in the order the result is to be paged in."""
        raise NotImplementedError

    def notify(self, conn: Connection) -> None:
        """Inside a write transaction: tell followers on commit."""

    def after_copy(self, conn: Connection) -> None:
        """After rows were copied in with their ids: counters continue past them."""

    def listener(self, on_change: Callable[[], None]) -> ChangeListener | None:
        """Something that calls ``on_change`` on each committed change, or None where the
        engine has no such feed (the workers are woken through Redis instead)."""
        return None


class SQLiteDialect(Dialect):
    """One file; WAL lets the web app read while the CLI imports. The name search is an
    FTS5 table kept by triggers, paged in its own (rowid) order, so a word in half the
    names costs what a rare one does."""

    name = "sqlite"

    def engine(self) -> Engine:
        Path(self.url.database or "").parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = (
                None  # transactions are begun below, not by the driver
            )
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # A writer takes the write lock at once: two writers never deadlock upgrading.
            write = conn.get_execution_options().get("catalog_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    def insert(self, table: Table) -> sqlite.Insert:
        return sqlite.insert(table)

    def prepare(self, conn: Connection) -> None:
        if "position" not in {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(photos)")}:
            # A catalog from before photo positions: the order they were added in.
            conn.exec_driver_sql(
                "ALTER TABLE photos ADD COLUMN position INTEGER NOT NULL DEFAULT 0"
            )
            conn.exec_driver_sql("UPDATE photos SET position = rowid")
        if conn.execute(select(meta.c.key).where(meta.c.key == "search")).first() is None:
            for statement in _SQLITE_SEARCH:
                conn.exec_driver_sql(statement)
            conn.exec_driver_sql("INSERT INTO items_search (items_search) VALUES ('rebuild')")
            conn.execute(meta.insert().values(key="search", value="1"))

    def name_search(self, conn: Connection, words: list[str], cursor: str, before: bool) -> Select:
        match = " ".join('"' + word.replace('"', '""') + '"*' for word in words) or '""'
        statement = (
            select(*items.c)
            .join_from(_FTS, items, _FTS.c.rowid == _ITEMS_ROWID)
            .where(text("items_search MATCH :match").bindparams(match=match))
        )
        position = conn.execute(select(_ITEMS_ROWID).where(items.c.item_id == cursor)).scalar()
        if position is not None:
            rowid = _FTS.c.rowid
            statement = statement.where(rowid < position if before else rowid > position)
        return statement.order_by(_FTS.c.rowid.desc() if before else _FTS.c.rowid)


# The FTS5 table over item names, and the items' rowids it is keyed by.
_FTS = table("items_search", column("rowid"))
_ITEMS_ROWID = literal_column("items.rowid")
_SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS items_search "
    "USING fts5(name, content='items', content_rowid='rowid')",
    "CREATE TRIGGER IF NOT EXISTS items_search_insert AFTER INSERT ON items BEGIN "
    "INSERT INTO items_search (rowid, name) VALUES (new.rowid, new.name); END",
    "CREATE TRIGGER IF NOT EXISTS items_search_delete AFTER DELETE ON items BEGIN "
    "INSERT INTO items_search (items_search, rowid, name) "
    "VALUES ('delete', old.rowid, old.name); END",
    "CREATE TRIGGER IF NOT EXISTS items_search_update AFTER UPDATE OF name ON items BEGIN "
    "INSERT INTO items_search (items_search, rowid, name) "
    "VALUES ('delete', old.rowid, old.name); "
    "INSERT INTO items_search (rowid, name) VALUES (new.rowid, new.name); END",
)


class PostgresDialect(Dialect):
    """A server every machine reaches. Each write transaction bumps the version row
    first, so writers queue on it and change numbers are committed in order (a follower
    never sees a later number before an earlier one), and sends a NOTIFY on commit. The
    name search is a GIN index over the names' words, paged by item id."""

    name = "postgresql"
    notifies = True

    def engine(self) -> Engine:
        return create_engine(self.url, pool_pre_ping=True, pool_size=4, max_overflow=8)

    def insert(self, table: Table) -> postgresql.Insert:
        return postgresql.insert(table)

    def lock_schema(self, conn: Connection) -> None:
        conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK)))

    def prepare(self, conn: Connection) -> None:
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS items_name_search ON items "
            "USING gin (to_tsvector('simple', name))"
        )

    def name_search(self, conn: Connection, words: list[str], cursor: str, before: bool) -> Select:
        query = None
        for word in words:
            term = func.to_tsquery(text("'simple'"), func.concat(func.quote_literal(word), ":*"))
            query = term if query is None else query.op("&&")(term)
        statement = select(*items.c)
        if query is not None:
            vector = func.to_tsvector(text("'simple'"), items.c.name)
            statement = statement.where(vector.op("@@")(query))
        key = items.c.item_id
        statement = statement.where(key < cursor if before else key > cursor)
        return statement.order_by(key.desc() if before else key)

    def notify(self, conn: Connection) -> None:
        conn.execute(select(func.pg_notify(CHANGE_CHANNEL, "")))

    def after_copy(self, conn: Connection) -> None:
        for counter in (changes.c.seq, corrections.c.correction_id):
            conn.execute(
                select(
                    func.setval(
                        func.pg_get_serial_sequence(counter.table.name, counter.name),
                        func.coalesce(select(func.max(counter)).scalar_subquery(), 0) + 1,
                        False,
                    )
                )
            )

    def listener(self, on_change: Callable[[], None]) -> ChangeListener:
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return ChangeListener(dsn, on_change)


class ChangeListener:
    """LISTENs on a PostgreSQL catalog's change channel from a thread of its own, calling
    ``on_change`` for each notification, and once each time it starts listening (a change
    committed before, or while the server was away, went unheard); reconnects after the
    server went away."""

    def __init__(self, dsn: str, on_change: Callable[[], None]) -> None:
        self._dsn = dsn
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="catalog-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        down = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANGE_CHANNEL}")
                    if down:
                        logger.info("catalog notifications are back")
                        down = False
                    self._on_change()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self._on_change()
            except psycopg.Error as exc:
                if not down:
                    logger.warning("catalog notifications lost (%s); polling until back", exc)
                    down = True
                self._stop.wait(1.0)
        logger.info("catalog listener stopped")


def dialect_for(url: URL) -> Dialect:
    return PostgresDialect(url) if url.get_backend_name() == "postgresql" else SQLiteDialect(url)


def next_version(conn: Connection) -> None:
    """Inside a write transaction: the catalog version, one higher (readers notice)."""
    conn.execute(
        meta.update()
        .where(meta.c.key == "version")
        .values(value=cast(cast(meta.c.value, Integer) + 1, meta.c.value.type))
    )
