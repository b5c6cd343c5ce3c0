"""Turn what the user points at (files, folders, CSV/JSON manifests) into ItemSources.

The item id defaults to the image's file stem. Manifests name images relative to
the manifest's own folder so a catalog directory can be moved as a whole, and only there:
a manifest from elsewhere must not make the import read ``/etc`` or ``/dev/zero`` unless
the user allows images outside (``images_anywhere``). One folder or
manifest must not name an item twice (``shoes/red.jpg`` and ``bags/red.jpg`` in one tree):
importing either would silently lose the other, so that is an error naming both.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from edgelens.catalog.models import ItemSource
from edgelens.errors import CatalogError
from edgelens.featurizer.preprocess import IMAGE_SUFFIXES

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


def collect_sources(paths: Iterable[Path], *, images_anywhere: bool = False) -> list[ItemSource]:
    """Expand paths into item sources; a later path's source with the same id wins (a
    manifest given after a folder overrides it), but one path naming an id twice is a
    CatalogError, as is a manifest naming an image outside its folder (links resolved)
    unless ``images_anywhere``."""
    found: dict[str, ItemSource] = {}
    for path in paths:
        for source in _unique(_expand(path, images_anywhere), path):
            found[source.item_id] = source
    return list(found.values())


def _unique(sources: list[ItemSource], path: Path) -> list[ItemSource]:
    first: dict[str, Path] = {}
    for source in sources:
        if source.item_id in first:
            raise CatalogError(
                f"{path} names item {source.item_id!r} twice ({first[source.item_id]} and "
                f"{source.image_path}): rename one, or give ids in a manifest"
            )
        first[source.item_id] = source.image_path
    return sources


def _expand(path: Path, images_anywhere: bool) -> list[ItemSource]:
    if path.is_dir():
        images = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        return [_from_image(p) for p in images]
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _from_records(_read_json(path), path, images_anywhere)
    if suffix == ".csv":
        return _from_records(_read_csv(path), path, images_anywhere)
    # Any other file is taken as an image; a non-image fails later with its path.
    return [_from_image(path)]


def _from_image(path: Path) -> ItemSource:
    return ItemSource(item_id=path.stem, image_path=path)


def _read_json(path: Path) -> list[dict[str, object]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CatalogError(f"cannot read manifest {path}: {exc}") from exc
    records = data.get("items") if isinstance(data, dict) else data
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise CatalogError(f"{path}: expected a list of item objects (or {{'items': [...]}})")
    return records


def _read_csv(path: Path) -> list[dict[str, object]]:
    try:
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise CatalogError(f"cannot read manifest {path}: {exc}") from exc


def _from_records(
    records: list[dict[str, object]], manifest: Path, images_anywhere: bool
) -> list[ItemSource]:
    sources = []
    folder = manifest.parent.resolve()
    for line, record in enumerate(records, start=1):
        where = f"{manifest} item {line}"
        image = record.get("image") or record.get("image_path")
        if not image:
            raise CatalogError(f"{where}: no 'image' given")
        image_path = Path(str(image))
        if not image_path.is_absolute():
            image_path = manifest.parent / image_path
        if not (images_anywhere or image_path.resolve().is_relative_to(folder)):
            raise CatalogError(
                f"{where}: image {image} is outside the manifest's folder {folder} "
                "(move it there, or allow images anywhere)"
            )
        item_id = str(record.get("id") or record.get("item_id") or image_path.stem)
        sources.append(
            ItemSource(
                item_id=item_id,
                image_path=image_path,
                name=_text(record.get("name")),
                price=_price(record.get("price"), where),
                currency=_text(record.get("currency")),
                available=_flag(record.get("available"), where),
            )
        )
    return sources


def _price(value: object, where: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        price = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"{where}: price {value!r} is not a number") from exc
    if price < 0 or price != price:
        raise CatalogError(f"{where}: price {value!r} must be a non-negative number")
    return price


def _text(value: object) -> str | None:
    """Empty cells mean "not given": the catalog keeps (or defaults) that field."""
    text = "" if value is None else str(value).strip()
    return text or None


def _flag(value: object, where: str) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CatalogError(f"{where}: available {value!r} is not a yes/no value")
