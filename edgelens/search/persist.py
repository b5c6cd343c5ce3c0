"""Save and load an approximate index with its projection, so a restart does not rebuild.

One ``.npz`` file (uncompressed: the int8 vectors do not compress and loading
must be quick) holds the faiss IVF index, the int8 full and reduced vectors, the row table,
the items and a JSON header naming the model id, the catalog version and the
projection's version. The file is written beside its destination, synced, then
renamed over it, so a reader sees the old index or the new one, never half.
An index of another model id is refused: its vectors mean nothing to the
running featurizer.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from edgelens.catalog.models import CatalogItem
from edgelens.errors import ModelMismatchError, SearchError
from edgelens.search.ann import AnnConfig, AnnIndex, AnnState, Int8Codec
from edgelens.search.projection import Projection

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class PersistedIndex:
    """A loaded index and the catalog version it was saved at (to catch up from)."""

    index: AnnIndex
    catalog_version: str


def save_index(index: AnnIndex, path: Path, *, catalog_version: str) -> None:
    """Write ``index`` to ``path`` atomically, tagged with ``catalog_version``."""
    state = index.state()
    header = {
        "format": FORMAT_VERSION,
        "model_id": state.projection.model_id,
        "catalog_version": catalog_version,
        "projection_version": state.projection.version,
        "explained": state.projection.explained,
        "config": asdict(state.config),
    }
    names = [field.name for field in fields(CatalogItem)]  # asdict deep-copies: 5x slower
    items = json.dumps([[getattr(item, name) for name in names] for item in state.items])
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("wb") as handle:
            np.savez(
                handle,
                header=np.array(json.dumps(header)),
                basis=state.projection.basis,
                full_scale=state.full.scale,
                reduced_scale=state.reduced.scale,
                ivf=state.ivf,
                codes=state.codes,
                reduced_codes=state.reduced_codes,
                row_item=state.row_item,
                items=np.frombuffer(items.encode(), dtype=np.uint8),
            )
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise SearchError(f"cannot save the index to {path}: {exc}") from exc
    logger.info("saved %d items of %s to %s", len(index), state.projection.version, path)


def load_index(path: Path, *, model_id: str) -> PersistedIndex:
    """Load an index saved by :func:`save_index`; refuse one of another model."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            if header.get("format") != FORMAT_VERSION:
                raise SearchError(f"{path}: unknown index format {header.get('format')!r}")
            if header["model_id"] != model_id:
                raise ModelMismatchError(
                    f"{path} indexes vectors of {header['model_id']!r}, not {model_id!r}"
                )
            projection = Projection(model_id, data["basis"], float(header["explained"]))
            if projection.version != header["projection_version"]:
                raise SearchError(f"{path}: projection does not match its recorded version")
            state = AnnState(
                config=AnnConfig(**header["config"]),
                projection=projection,
                full=Int8Codec(data["full_scale"]),
                reduced=Int8Codec(data["reduced_scale"]),
                ivf=data["ivf"],
                codes=data["codes"],
                reduced_codes=data["reduced_codes"],
                row_item=data["row_item"],
                items=[CatalogItem(*fields) for fields in json.loads(data["items"].tobytes())],
            )
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise SearchError(f"cannot load the index from {path}: {exc}") from exc
    index = AnnIndex.from_state(state)
    logger.info("loaded %d items of %s from %s", len(index), projection.version, path)
    return PersistedIndex(index, header["catalog_version"])
