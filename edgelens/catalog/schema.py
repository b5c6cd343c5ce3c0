"""The catalog's tables, one definition for every database engine (SQLAlchemy Core).

An item has one or more photos (``photos``, ordered within the item by ``position``; the
first of them its cover in ``items``). Vectors are keyed by (image sha256, model id,
catalog recipe): the same picture is never featurized twice by the same model and recipe,
and vectors of another model are never returned for this one. Keypoints for spatial
verification are kept the same way, by (image sha256, extraction method), in their
compact stored form (``LocalFeatures.to_blobs``). ``changes`` is the change log workers
follow; ``meta`` holds the catalog version and the migrations done.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)

metadata = MetaData()

# SQLite's rowid alias must be spelled INTEGER; PostgreSQL gets a 64-bit identity.
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")

items = Table(
    "items",
    metadata,
    Column("item_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("price", Float),
    Column("currency", Text, nullable=False),
    Column("available", Boolean, nullable=False),
    Column("image_sha256", Text, nullable=False),
    Column("image_file", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("items_by_image", "image_sha256"),
)

photos = Table(
    "photos",
    metadata,
    Column("item_id", Text, primary_key=True),
    Column("image_sha256", Text, primary_key=True),
    Column("image_file", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("added_at", Float, nullable=False),
    Column("position", Integer, nullable=False),  # order within the item, first added first
    Index("photos_by_image", "image_sha256"),
)

vectors = Table(
    "vectors",
    metadata,
    Column("image_sha256", Text, primary_key=True),
    Column("model_id", Text, primary_key=True),
    Column("recipe", Text, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("dim", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

local_features = Table(
    "local_features",
    metadata,
    Column("image_sha256", Text, primary_key=True),
    Column("method", Text, primary_key=True),
    Column("xy", LargeBinary, nullable=False),
    Column("descriptors", LargeBinary, nullable=False),
)

changes = Table(
    "changes",
    metadata,
    Column("seq", _SERIAL, primary_key=True, autoincrement=True),
    Column("item_id", Text, nullable=False),
    Column("op", Text, CheckConstraint("op IN ('upsert', 'remove')"), nullable=False),
    sqlite_autoincrement=True,  # a seq is never reused, even after the newest is deleted
)

removed_items = Table(
    "removed_items",
    metadata,
    Column("item_id", Text, primary_key=True),
    Column("removed_at", Float, nullable=False),
    Column("item", Text, nullable=False),  # the CatalogItem, as JSON
    Column("photos", Text, nullable=False),  # its ItemPhoto rows, as JSON
)

corrections = Table(
    "corrections",
    metadata,
    Column("correction_id", _SERIAL, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("user", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("item_id", Text),
    Column("photo_sha256", Text),
    Column("undone_at", Float),
    Column("undone_by", Text),
    Index("corrections_by_item", "item_id"),
    sqlite_autoincrement=True,
)

# The view a device sent with a corrected frame, as it came (a JPEG), and the frame's
# vectors (a feature message without the view, when the worker kept them), for the workers
# to remember (edgelens.cloud.recall). Deleted when the correction is undone (the log
# keeps the correction).
correction_views = Table(
    "correction_views",
    metadata,
    Column("correction_id", Integer, primary_key=True, autoincrement=False),
    Column("view", LargeBinary, nullable=False),
    Column("vectors", LargeBinary),
)

meta = Table(
    "meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

# Copied in this order by a migration between databases.
TABLES = (
    items,
    photos,
    vectors,
    local_features,
    changes,
    removed_items,
    corrections,
    correction_views,
    meta,
)
