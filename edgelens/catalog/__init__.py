"""The catalog: items and their photos in SQLite or PostgreSQL, images stored by content hash,
vectors cached per model."""
