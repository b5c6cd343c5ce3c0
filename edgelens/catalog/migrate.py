"""Copy a catalog from one database to another: an embedded SQLite catalog onto the
PostgreSQL of a deployment past one machine (or back), row for row, with every table's
count checked afterwards. The images stay where they are (the images folder)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from edgelens.catalog.schema import TABLES, meta
from edgelens.catalog.store import CatalogStore
from edgelens.errors import CatalogError

logger = logging.getLogger(__name__)


def copy_catalog(
    *,
    source: CatalogStore,
    target: CatalogStore,
    batch: int = 2_000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Every row of ``source`` into ``target``, which must hold no items, photos or
    vectors yet; returns the rows per table. Each batch is one transaction of the target;
    the counts of both are compared at the end (a CatalogError when they differ)."""
    held = _data(target.row_counts())
    if any(held.values()):
        raise CatalogError(
            f"{target.location} is not empty ({_counts(held)}): copy into a new database"
        )
    for table in TABLES:
        for rows in source.dump(table, batch=batch):
            target.load(table, rows)
            if progress is not None:
                progress(len(rows))
    target.continue_counters()
    copied, landed = _data(source.row_counts()), _data(target.row_counts())
    if copied != landed:
        raise CatalogError(f"copy does not add up: {_counts(copied)} in, {_counts(landed)} out")
    logger.info("catalog copied to %s: %s", target.location, _counts(landed))
    return landed


def _data(counts: dict[str, int]) -> dict[str, int]:
    """The counts of the catalog's data: ``meta`` holds each engine's own migrations."""
    return {name: count for name, count in counts.items() if name != meta.name}


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in counts.items())
