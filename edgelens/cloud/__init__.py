"""message → match: the worker that searches the catalog for each device's vectors."""
