import json
from pathlib import Path

import pytest

from edgelens.catalog.sources import collect_sources
from edgelens.errors import CatalogError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_items_are_named_by_file_stem(tmp_path: Path):
    _touch(tmp_path / "mug.jpg")
    _touch(tmp_path / "sub" / "red_shoe.PNG")
    _touch(tmp_path / "notes.txt")
    sources = {s.item_id: s for s in collect_sources([tmp_path])}
    assert set(sources) == {"mug", "red_shoe"}
    assert sources["mug"].name is None  # metadata left to the catalog


def test_a_folder_naming_one_item_twice_is_refused_with_both_files(tmp_path: Path):
    _touch(tmp_path / "mug.jpg")  # an image at the top: a flat folder, items by file stem
    _touch(tmp_path / "shoes" / "red.jpg")
    _touch(tmp_path / "bags" / "red.png")
    with pytest.raises(CatalogError, match=r"'red' twice") as caught:
        collect_sources([tmp_path])
    assert "shoes/red.jpg" in str(caught.value) and "bags/red.png" in str(caught.value)


def test_a_folder_of_item_folders_gives_each_item_its_photos(tmp_path: Path):
    _touch(tmp_path / "oat-milk" / "front.jpg")
    _touch(tmp_path / "oat-milk" / "shop" / "shelf.png")
    _touch(tmp_path / "rice" / "pack.jpg")
    _touch(tmp_path / "empty" / "notes.txt")
    sources = {s.item_id: s for s in collect_sources([tmp_path])}
    assert set(sources) == {"oat-milk", "rice"}
    assert sources["oat-milk"].images == (
        tmp_path / "oat-milk" / "front.jpg",
        tmp_path / "oat-milk" / "shop" / "shelf.png",
    )
    assert sources["rice"].images == (tmp_path / "rice" / "pack.jpg",)


def test_a_manifest_lists_several_photos_of_an_item(tmp_path: Path):
    manifest = tmp_path / "items.csv"
    manifest.write_text("id,image,images\nsku-1,a.jpg,b.jpg; c.jpg;a.jpg\nsku-2,,d.jpg\n")
    one, two = collect_sources([manifest])
    assert [p.name for p in one.images] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [p.name for p in two.images] == ["d.jpg"]
    listed = tmp_path / "items.json"
    listed.write_text(json.dumps([{"id": "sku-3", "images": ["e.jpg", "f.jpg"]}]))
    (three,) = collect_sources([listed])
    assert [p.name for p in three.images] == ["e.jpg", "f.jpg"]


def test_a_manifest_naming_one_item_twice_is_refused(tmp_path: Path):
    manifest = tmp_path / "items.csv"
    manifest.write_text("id,image\nsku-1,a.jpg\nsku-1,b.jpg\n")
    with pytest.raises(CatalogError, match=r"'sku-1' twice"):
        collect_sources([manifest])


def test_a_later_path_overrides_an_earlier_one(tmp_path: Path):
    _touch(tmp_path / "img" / "mug.jpg")
    manifest = tmp_path / "items.json"
    manifest.write_text(json.dumps([{"image": "img/mug.jpg", "name": "Blue mug"}]))
    sources = collect_sources([tmp_path / "img", manifest])
    assert [(s.item_id, s.name) for s in sources] == [("mug", "Blue mug")]


def test_csv_manifest_with_relative_images(tmp_path: Path):
    _touch(tmp_path / "img" / "a.jpg")
    manifest = tmp_path / "items.csv"
    manifest.write_text(
        "id,name,price,currency,available,image\n"
        "sku-1,Blue mug,9.5,USD,no,img/a.jpg\n"
        "sku-2,,,,,img/b.jpg\n"
    )
    one, two = collect_sources([manifest])
    assert (one.item_id, one.name, one.price, one.currency, one.available) == (
        "sku-1",
        "Blue mug",
        9.5,
        "USD",
        False,
    )
    assert one.images == (tmp_path / "img" / "a.jpg",)
    assert (two.name, two.price, two.currency, two.available) == (None, None, None, None)


def test_json_manifest_and_id_from_image_stem(tmp_path: Path):
    manifest = tmp_path / "items.json"
    manifest.write_text(json.dumps({"items": [{"image": "lamp.png", "price": 3}]}))
    (source,) = collect_sources([manifest])
    assert (source.item_id, source.price) == ("lamp", 3.0)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": "x"}, "no 'image' or 'images'"),
        ({"id": "x", "images": []}, "no 'image' or 'images'"),
        ({"id": "x", "images": "a.png;../b.png"}, "outside the manifest's folder"),
        ({"image": "a.png", "price": "cheap"}, "not a number"),
        ({"image": "a.png", "price": -1}, "non-negative"),
        ({"image": "a.png", "available": "maybe"}, "yes/no"),
    ],
)
def test_bad_manifest_records_name_the_line(tmp_path: Path, record, message):
    manifest = tmp_path / "items.json"
    manifest.write_text(json.dumps([record]))
    with pytest.raises(CatalogError, match=message) as info:
        collect_sources([manifest])
    assert "item 1" in str(info.value)


def test_unreadable_manifest(tmp_path: Path):
    manifest = tmp_path / "items.json"
    manifest.write_text("{not json")
    with pytest.raises(CatalogError, match="cannot read manifest"):
        collect_sources([manifest])


@pytest.mark.parametrize("image", ["../outside.png", "/etc/hostname", "link.png"])
def test_a_manifest_reads_images_only_inside_its_folder(tmp_path: Path, image):
    folder = tmp_path / "catalog"
    folder.mkdir()
    (tmp_path / "outside.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "link.png").symlink_to(tmp_path / "outside.png")
    manifest = folder / "items.json"
    manifest.write_text(json.dumps([{"id": "x", "image": image}]))
    with pytest.raises(CatalogError, match="outside the manifest's folder"):
        collect_sources([manifest])
    (source,) = collect_sources([manifest], images_anywhere=True)
    assert source.item_id == "x"
