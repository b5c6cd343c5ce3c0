"""Corrections from the device page over HTTP: the frame's view becomes a photo of the
item, the log says who and when, the item's page undoes it."""

import dataclasses

import numpy as np
import pytest

from edgelens.catalog.ingest import add_items
from edgelens.catalog.models import PhotoOrigin
from edgelens.catalog.sources import collect_sources
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.sink import RedisSink
from edgelens.featurizer.focus import focus_view_jpeg
from edgelens.samples.photos import load_photo
from edgelens.testing.web import ADMIN
from edgelens.wire.features import MAX_JPEG_BYTES, FeatureMessage, encode
from edgelens.wire.names import view_key, view_vectors_key


@pytest.fixture
def store(web_settings, featurizer, sample_catalog):
    catalog = CatalogStore(web_settings.catalog_url)
    sources = [s for s in collect_sources([sample_catalog]) if s.item_id in {"coffee", "rocket"}]
    add_items(
        store=catalog, featurizer=featurizer, sources=sources, images_dir=web_settings.images_dir
    )
    yield catalog
    catalog.close()


@pytest.fixture
def sink(web_settings):
    pushing = RedisSink(str(web_settings.redis_url), matches_kept=50, views_kept_s=60)
    yield pushing
    pushing._redis.close()


@pytest.fixture
def view_jpeg() -> bytes:
    return focus_view_jpeg(load_photo("astronaut"), MAX_JPEG_BYTES)


def test_a_correction_adds_the_view_as_a_photo_and_undo_takes_it_back(
    http, anonymous, store, sink, make_record, view_jpeg, redis_client
):
    record = dataclasses.replace(make_record("cam", 7, "rocket", "coffee"), view=True)
    vectors = encode(FeatureMessage("cam", 7, 0.0, "model", np.full(16, 0.25, np.float32)))
    sink.push([record], {("cam", 7): view_jpeg}, {("cam", 7): vectors})
    assert 0 < redis_client.ttl(view_key("cam", 7)) <= 60
    assert 0 < redis_client.ttl(view_vectors_key("cam", 7)) <= 60
    page = http.get("/devices/cam")
    assert 'src="/devices/cam/views/7"' in page.text and 'id="correction-form"' in page.text
    assert page.text.count('src="/devices/cam/views/7"') == 2, "the form shows its frame's view"
    assert 'id="correction-form"' not in anonymous.get("/devices/cam").text, "admins only"
    served = anonymous.get("/devices/cam/views/7")
    assert served.content == view_jpeg and served.headers["content-type"] == "image/jpeg"
    assert anonymous.get("/devices/cam/views/8").status_code == 404
    assert http.get("/api/items", params={"q": "coff"}).json() == [
        {"item_id": "coffee", "name": "Coffee cup"}
    ]

    denied = anonymous.post("/devices/cam/corrections", data={"seq": 7, "verdict": "item"})
    assert denied.status_code in (401, 403) and len(store.photos("coffee")) == 1
    done = http.post(
        "/devices/cam/corrections", data={"seq": "7", "verdict": "item", "item_id": "coffee"}
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/devices/cam?corrected=")
    cover, added = store.photos("coffee")
    assert added.origin is PhotoOrigin.CORRECTION and cover.origin is PhotoOrigin.IMPORT
    (correction,) = store.corrections(item_id="coffee")
    assert (correction.user, correction.device_id, correction.seq) == (ADMIN, "cam", 7)
    assert correction.photo_sha256 == added.image_sha256 and correction.undone_at is None
    assert store.correction_views([correction.correction_id]) == {
        correction.correction_id: (view_jpeg, vectors)
    }, "the view and the frame's vectors are kept for the workers to remember"
    assert [c for c, _ in store.corrected_views(10)] == [correction.correction_id]
    thanks = http.get(done.headers["location"])
    assert "frame #7 shows" in thanks.text and "Coffee cup" in thanks.text
    assert "kept as a photo of the item" in thanks.text

    item_page = http.get("/catalog/items/coffee")
    assert "said frame #7 of" in item_page.text and ">Undo</button>" in item_page.text
    undo = f"/catalog/items/coffee/corrections/{correction.correction_id}/undo"
    assert (
        http.post(f"/catalog/items/rocket/corrections/{correction.correction_id}/undo").status_code
        == 404
    )
    assert http.post(undo).status_code == 303
    assert [p.image_sha256 for p in store.photos("coffee")] == [cover.image_sha256]
    (undone,) = store.corrections(item_id="coffee")
    assert undone.undone_by == ADMIN and undone.undone_at >= correction.at
    assert "undone by" in http.get("/catalog/items/coffee").text
    assert store.corrected_views(10) == [], "the workers forget the view"
    assert store.correction_views([correction.correction_id]) == {}, "and it is not kept"
    assert http.post(undo).status_code == 303, "undoing twice changes nothing"
    assert len(store.photos("coffee")) == 1


def test_not_in_the_catalog_is_logged_and_a_lost_view_is_said(
    http, store, sink, make_record, view_jpeg
):
    sink.push(
        [dataclasses.replace(make_record("cam", 3, "rocket"), view=True)], {("cam", 3): view_jpeg}
    )
    none = http.post("/devices/cam/corrections", data={"seq": "3", "verdict": "not_in_catalog"})
    assert none.status_code == 303
    (logged,) = store.corrections()
    assert logged.item_id is None and logged.photo_sha256 is None
    assert store.corrected_views(10) == [(logged.correction_id, None)]
    noted = http.get(none.headers["location"]).text
    assert "shows something that is not in the catalog" in noted
    undo = f"/devices/cam/corrections/{logged.correction_id}/undo"
    assert f'action="{undo}"' in noted, "no item page to undo it from: the notice does"
    assert http.post(f"/devices/other/corrections/{logged.correction_id}/undo").status_code == 404
    undone = http.post(undo)
    assert (
        undone.status_code == 303
        and "Undone: the correction of frame #3" in http.get(undone.headers["location"]).text
    )
    assert store.corrected_views(10) == [] and store.corrections()[0].undone_by == ADMIN

    gone = http.post(
        "/devices/cam/corrections", data={"seq": "4", "verdict": "item", "item_id": "coffee"}
    )
    assert gone.status_code == 404 and "no longer kept" in gone.text
    unknown = http.post(
        "/devices/cam/corrections", data={"seq": "3", "verdict": "item", "item_id": "nope"}
    )
    assert unknown.status_code == 404 and "no item called “nope” in the catalog" in unknown.text
    assert len(store.photos("coffee")) == 1 and len(store.corrections()) == 1


def test_the_item_may_be_typed_by_its_name_and_a_wrong_one_says_what_to_do(
    http, store, sink, make_record, view_jpeg
):
    record = dataclasses.replace(make_record("cam", 9, "rocket"), view=True)
    sink.push([record], {("cam", 9): view_jpeg}, {})

    def correct(typed: str):
        return http.post(
            "/devices/cam/corrections", data={"seq": "9", "verdict": "item", "item_id": typed}
        )

    empty = correct("  ")
    assert empty.status_code == 404 and "type or pick the item this frame shows" in empty.text
    unknown = correct("Coffee mug")
    assert unknown.status_code == 404
    assert "no item called “Coffee mug” in the catalog" in unknown.text
    by_name = correct("coffee CUP")  # the name, as a person types it
    assert by_name.status_code == 303
    (correction,) = store.corrections(item_id="coffee")
    assert correction.seq == 9
