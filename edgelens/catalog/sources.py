"""Turn what the user points at (files, folders, CSV/JSON manifests) into ItemSources.

A folder is read one of two ways. With images directly inside it (a flat folder), each
image under it is an item, its id the file's stem. With none there but subfolders holding
images (a folder per item, ``DIR/<item_id>/*``), each subfolder is an item and every image
under it one of its photos. A manifest row gives an item's photos in ``image`` and/or
``images`` (a JSON list, or names separated by ``;`` in a CSV cell).
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
                f"{source.images[0]}): rename one, or give ids in a manifest"
            )
        first[source.item_id] = source.images[0]
    return sources


def _expand(path: Path, images_anywhere: bool) -> list[ItemSource]:
    if path.is_dir():
        if is_item_folders(path):
            return [
                ItemSource(folder.name, tuple(_images_under(folder)))
                for folder in sorted(path.iterdir())
                if folder.is_dir() and _images_under(folder)
            ]
        return [_from_image(p) for p in _images_under(path)]
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _from_records(_read_json(path), path, images_anywhere)
    if suffix == ".csv":
        return _from_records(_read_csv(path), path, images_anywhere)
    # Any other file is taken as an image; a non-image fails later with its path.
    return [_from_image(path)]


def is_item_folders(path: Path) -> bool:
    """Whether a folder is laid out a folder per item: no image directly inside it, and
    images in its subfolders."""
    return not any(_is_image(p) for p in path.iterdir()) and any(
        _is_image(p) for p in path.rglob("*")
    )


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if _is_image(p))


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _from_image(path: Path) -> ItemSource:
    return ItemSource(item_id=path.stem, images=(path,))


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
    for line, record in enumerate(records, start=1):
        where = f"{manifest} item {line}"
        images = [_image_path(name, manifest, where, images_anywhere) for name in _named(record)]
        if not images:
            raise CatalogError(f"{where}: no 'image' or 'images' given")
        item_id = str(record.get("id") or record.get("item_id") or images[0].stem)
        sources.append(
            ItemSource(
                item_id=item_id,
                images=tuple(images),
                name=_text(record.get("name")),
                price=_price(record.get("price"), where),
                currency=_text(record.get("currency")),
                available=_flag(record.get("available"), where),
            )
        )
    return sources


def _named(record: dict[str, object]) -> list[str]:
    """The image names of a manifest row: ``image`` then ``images`` (a list, or a text of
    names separated by ``;``)."""
    names = []
    for key in ("image", "image_path", "images"):
        value = record.get(key)
        if isinstance(value, list):
            names += [str(v).strip() for v in value]
        elif value is not None:
            names += [n.strip() for n in str(value).split(";")] if key == "images" else [str(value)]
    return [name for name in dict.fromkeys(names) if name]


def _image_path(name: str, manifest: Path, where: str, images_anywhere: bool) -> Path:
    path = Path(name)
    if not path.is_absolute():
        path = manifest.parent / path
    folder = manifest.parent.resolve()
    if not (images_anywhere or path.resolve().is_relative_to(folder)):
        raise CatalogError(
            f"{where}: image {name} is outside the manifest's folder {folder} "
            "(move it there, or allow images anywhere)"
        )
    return path


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
