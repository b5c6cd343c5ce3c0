"""Browsing the catalog a page at a time: keyset pages, name and id search, an old catalog
given its name index, a delete undone."""

import sqlite3

import pytest

from edgelens.catalog.models import CatalogItem, PhotoOrigin
from edgelens.catalog.store import CatalogStore
from edgelens.errors import CatalogError, ItemNotFoundError

NAMES = ("Oat drink vanilla", "Oat drink natural", "Rye bread", "Green tea")


def _fill(store: CatalogStore, count: int, first: int = 0) -> None:
    with store.transaction() as write:
        for n in range(first, first + count):
            sha = f"{n:064x}"
            name = f"{NAMES[n % len(NAMES)]} {n}"
            write.upsert(CatalogItem(f"sku-{n:05d}", name, 1.0, "EUR", n % 2 == 0, sha, sha))


def _ids(items) -> list[str]:
    return [i.item_id for i in items]


def test_pages_go_forward_and_back_by_id(store):
    _fill(store, 25)
    first = store.browse(limit=10)
    assert _ids(first) == [f"sku-{n:05d}" for n in range(11)], "one more: there are more"
    second = store.browse(after=first[9].item_id, limit=10)
    assert _ids(second)[0] == "sku-00010" and len(second) == 11
    last = store.browse(after="sku-00019", limit=10)
    assert _ids(last) == [f"sku-{n:05d}" for n in range(20, 25)]
    back = store.browse(before="sku-00020", limit=10)
    assert _ids(back) == [f"sku-{n:05d}" for n in range(9, 20)], "in id order, one more"
    unavailable = store.browse(available=False, limit=3)
    assert _ids(unavailable) == ["sku-00001", "sku-00003", "sku-00005", "sku-00007"]


def test_names_are_found_by_the_start_of_each_word_and_ids_by_their_start(store):
    _fill(store, 40)
    assert len(store.browse(text="oat", limit=100)) == 20
    assert len(store.browse(text="OAT VAN", limit=100)) == 10
    assert len(store.browse(text="drink nat", limit=100)) == 10
    assert store.browse(text="at", limit=100) == [], "a word's start, not its middle"
    assert _ids(store.browse(text="sku-0003", limit=100)) == [f"sku-{n:05d}" for n in range(30, 40)]
    assert store.browse(text='"', limit=5) == [] and store.browse(text="*", limit=5) == []
    with store.transaction() as write:
        renamed = store.get("sku-00002")
        write.upsert(CatalogItem(**{**renamed.__dict__, "name": "Spelt crackers"}))
    assert _ids(store.browse(text="spelt", limit=5)) == ["sku-00002"]
    assert "sku-00002" not in _ids(store.browse(text="rye", limit=100)), "the old name went"
    store.remove(["sku-00006"])
    assert "sku-00006" not in _ids(store.browse(text="rye", limit=100))


def test_ids_found_by_their_start_are_paged_both_ways(store):
    _fill(store, 400)
    first = store.browse(text="sku-001", limit=40)
    assert _ids(first) == [f"sku-{n:05d}" for n in range(100, 141)]
    rest = store.browse(text="sku-001", after=first[39].item_id, limit=80)
    assert _ids(rest) == [f"sku-{n:05d}" for n in range(140, 200)], "the prefix's end"
    back = store.browse(text="sku-001", before="sku-00110", limit=40)
    assert _ids(back) == [f"sku-{n:05d}" for n in range(100, 110)], "the prefix's start"
    assert _ids(store.browse(text="sku-001", after="sku-00050", limit=2)) == [
        "sku-00100",
        "sku-00101",
        "sku-00102",
    ], "a cursor before the prefix pages from its start"


def test_a_word_in_many_names_is_paged_like_the_rest(store):
    _fill(store, 1_200)  # more names match "oat" than are listed: the id order finds them
    page = store.browse(text="oat", after="sku-01000", limit=4)
    assert _ids(page) == [
        "sku-01001",
        "sku-01004",
        "sku-01005",
        "sku-01008",
        "sku-01009",
    ]


def test_an_old_catalog_is_given_its_name_index(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    store = CatalogStore(path)
    _fill(store, 8)
    store.close()
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "DROP TRIGGER items_search_insert; DROP TRIGGER items_search_delete; "
            "DROP TRIGGER items_search_update; DROP TABLE items_search; "
            "DELETE FROM meta WHERE key = 'search';"
        )
    again = CatalogStore(path)
    assert len(again.browse(text="green", limit=10)) == 2
    again.close()


def test_a_deleted_item_comes_back_with_its_photos(store):
    _fill(store, 3)
    with store.transaction() as write:
        write.put_photos("sku-00001", [("b" * 64, "bb/b.png")], PhotoOrigin.ADDED)
    photos = store.photos("sku-00001")
    assert len(photos) == 2
    assert store.remove(["sku-00001"]) == ["sku-00001"]
    with pytest.raises(ItemNotFoundError):
        store.get("sku-00001")
    restored = store.restore("sku-00001")
    assert restored.name == "Oat drink natural 1" and store.photos("sku-00001") == photos
    assert _ids(store.browse(text="natural", limit=5)) == ["sku-00001"]
    with pytest.raises(ItemNotFoundError):
        store.restore("sku-00001")
    store.remove(["sku-00002"])
    _fill(store, 1, first=2)  # the id is taken again
    with pytest.raises(CatalogError, match="in the catalog again"):
        store.restore("sku-00002")
