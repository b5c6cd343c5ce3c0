"""The catalog: item metadata in SQLite, images stored by content hash, vectors cached per model."""
