"""Catalog upload, edit and delete through HTTP, with the CLI's catalog code underneath."""

import dataclasses
from pathlib import Path

import pytest

from edgelens.catalog.augment import DEFAULT_RECIPE
from edgelens.catalog.models import CatalogItem
from edgelens.catalog.store import CatalogStore
from edgelens.errors import ItemNotFoundError
from edgelens.featurizer.preprocess import decode_image
from edgelens.testing.web import UPLOAD_LIMIT
from edgelens.wire.names import CATALOG_CHANNEL


@pytest.fixture
def store(web_settings):
    catalog = CatalogStore(web_settings.catalog_url)
    yield catalog
    catalog.close()


def _files(settings) -> list[Path]:
    return sorted(p for p in settings.images_dir.rglob("*") if p.is_file())


def _upload(http, path: Path, **fields: str):
    return http.post(
        "/catalog/items", files={"image": (path.name, path.read_bytes(), "image/png")}, data=fields
    )


def test_upload_edit_delete(http, store, featurizer, sample_catalog):
    photo = sample_catalog.parent / "clock.png"
    added = _upload(http, photo, name="Clock", price="3.50", currency="USD", available="true")
    assert added.status_code == 303
    assert added.headers["location"] == "/catalog/items/clock?notice=added"
    item = store.get("clock")
    assert (item.name, item.price, item.currency, item.available) == ("Clock", 3.5, "USD", True)
    assert [i.item_id for i in store.vectors(featurizer.model_id, DEFAULT_RECIPE.recipe_id)[0]] == [
        "clock"
    ]

    page = http.get("/catalog")
    assert 'data-item-id="clock"' in page.text and "1 item" in page.text
    assert "Added." in http.get(added.headers["location"]).text
    image = http.get("/catalog/images/clock")
    assert image.status_code == 200 and image.content == photo.read_bytes()
    assert image.headers["content-type"] == "image/png"

    # An unchecked box is not sent: the item becomes unavailable; an empty price clears it.
    edited = http.post("/catalog/items/clock", data={"name": "Wall clock", "currency": "EUR"})
    assert edited.status_code == 303
    item = store.get("clock")
    assert (item.name, item.price, item.currency, item.available) == (
        "Wall clock",
        None,
        "EUR",
        False,
    )

    # What a browser would not send (it checks the fields too): the form comes back as
    # typed, each reason beside its field, and nothing changes.
    refused = http.post(
        "/catalog/items/clock",
        data={"name": "  ", "price": "-2", "currency": "GBP", "available": "true"},
    )
    assert refused.status_code == 422
    form = refused.text.split('id="edit-form"', 1)[1].split("</form>", 1)[0]
    assert 'name="price" value="-2"' in form and 'name="currency" value="GBP"' in form
    assert 'id="name-error"' in form and "Give the item a name." in form
    assert 'id="price-error"' in form and "The price is 0 or more." in form
    assert 'id="currency-error"' not in form and "checked" in form
    assert store.get("clock").name == "Wall clock", "nothing saved"
    not_a_number = http.post(
        "/catalog/items/clock", data={"name": "Clock", "price": "inf", "currency": "EUR"}
    )
    assert not_a_number.status_code == 422 and "The price is a number" in not_a_number.text
    assert store.get("clock").name == "Wall clock"

    deleted = http.post("/catalog/items/clock/delete")
    assert deleted.status_code == 303
    with pytest.raises(ItemNotFoundError):
        store.get("clock")
    offer = http.get(deleted.headers["location"])
    assert "clock</code> removed" in offer.text and "/catalog/items/clock/restore" in offer.text
    assert http.post("/catalog/items/clock/restore").status_code == 303
    assert store.get("clock").name == "Wall clock" and len(store.photos("clock")) == 1
    assert [i.item_id for i in store.vectors(featurizer.model_id, DEFAULT_RECIPE.recipe_id)[0]] == [
        "clock"
    ], "searchable again, nothing featurized"
    assert http.post("/catalog/items/clock/restore").status_code == 404, "once"
    assert http.post("/catalog/items/clock/delete").status_code == 303
    missing = http.get("/catalog/images/clock")
    assert missing.status_code == 404 and "clock" in missing.json()["detail"]
    assert http.post("/catalog/items/clock/delete").status_code == 404
    edit_gone = http.post("/catalog/items/clock", data={"name": "x", "currency": "EUR"})
    assert edit_gone.status_code == 404
    assert len(store) == 0


def test_each_change_made_on_the_dashboard_wakes_the_workers(
    http, store, redis_client, sample_catalog
):
    """Workers hear of every change at once, the newest change number with it (they would
    otherwise wait for their next look at the change log); a refused change says nothing."""
    wakeups = redis_client.pubsub(ignore_subscribe_messages=True)
    wakeups.subscribe(CATALOG_CHANNEL)
    wakeups.get_message(timeout=1)  # the subscription confirmed

    def heard() -> list[int]:
        said = []
        while (message := wakeups.get_message(timeout=0.5)) is not None:
            said.append(int(message["data"]))
        return said

    assert _upload(http, sample_catalog.parent / "clock.png").status_code == 303
    assert heard() == [store.last_change]
    assert http.post("/catalog/items/clock", data={"name": "Clock", "currency": "EUR"}).is_redirect
    assert heard() == [store.last_change]
    refused = http.post("/catalog/items/clock", data={"name": " ", "currency": "EUR"})
    assert refused.status_code == 422 and heard() == []
    for action in ("delete", "restore"):
        before = store.last_change
        assert http.post(f"/catalog/items/clock/{action}").is_redirect
        assert heard() == [store.last_change] and store.last_change > before
    wakeups.close()


def test_upload_defaults_come_from_the_file_name(http, store, sample_catalog):
    assert _upload(http, sample_catalog.parent / "rocket.png").status_code == 303
    item = store.get("rocket")
    assert (item.name, item.price, item.currency, item.available) == ("rocket", None, "EUR", False)


def test_oversize_upload_is_413_and_changes_nothing(http, store, web_settings, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\0" * UPLOAD_LIMIT)
    answer = _upload(http, big, item_id="big-one", name="Big poster", price="12.50")
    assert answer.status_code == 413
    assert f"larger than {UPLOAD_LIMIT} bytes" in answer.text
    # the form comes back open, with what was typed
    assert 'value="big-one"' in answer.text and 'value="Big poster"' in answer.text
    assert 'value="12.50"' in answer.text
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\0" * (UPLOAD_LIMIT * 4))
    assert _upload(http, huge).status_code == 413, "refused before it is even parsed"
    assert len(store) == 0 and _files(web_settings) == []


def test_corrupt_upload_is_422_with_the_reason_and_changes_nothing(
    http, store, web_settings, sample_catalog, tmp_path
):
    assert _upload(http, sample_catalog.parent / "chelsea.png").status_code == 303
    before = (store.items(), _files(web_settings))
    corrupt = tmp_path / "chelsea.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 100)
    answer = _upload(http, corrupt, name="Broken")
    assert answer.status_code == 422
    assert 'id="image-error"' in answer.text and "chelsea.png:" in answer.text
    assert "Traceback" not in answer.text
    assert (store.items(), _files(web_settings)) == before, "the old item and image are kept"


def test_an_upload_the_form_would_not_send_keeps_what_was_typed_and_says_why(
    http, store, sample_catalog
):
    """A crafted upload (a negative price, a bad id, a long currency) gets the catalog page
    back with the form as typed and each reason beside its field; nothing is added."""
    answer = _upload(
        http,
        sample_catalog.parent / "moon.png",
        item_id="../moon",
        name="Moon poster",
        price="-1",
        currency="DOLLARS-US",
    )
    assert answer.status_code == 422
    form = answer.text.split('id="upload-form"', 1)[1].split("</form>", 1)[0]
    assert 'name="item_id" value="../moon"' in form and 'value="Moon poster"' in form
    assert 'id="item_id-error"' in form and "An item id is letters, digits" in form
    assert 'id="price-error"' in form and "The price is 0 or more." in form
    assert 'id="currency-error"' in form and "at most 8 characters" in form
    assert 'id="image-error"' not in form and 'aria-describedby="price-error"' in form
    assert len(store) == 0
    nan = _upload(http, sample_catalog.parent / "moon.png", price="nan")
    assert nan.status_code == 422 and "The price is a number" in nan.text and len(store) == 0
    # no id typed: the file name gives it, and a name that makes no id is the photo's problem
    named = http.post(
        "/catalog/items",
        files={"image": ("my moon!.png", (sample_catalog.parent / "moon.png").read_bytes())},
    )
    said = named.text.split('id="image-error"', 1)[1].split("</p>", 1)[0]
    assert named.status_code == 422 and "item id &#39;my moon!&#39;" in said and len(store) == 0


def test_a_stored_image_is_served_as_its_content_says(http, store, sample_catalog, web_settings):
    """A catalog imported before formats were read from the bytes kept its file's suffix:
    PNG bytes named .html are still served as image/png, and a stored file that is no image
    is not served at all."""
    photo = sample_catalog.parent / "clock.png"
    assert _upload(http, photo).status_code == 303
    item = store.get("clock")
    old = web_settings.images_dir / item.image_file
    disguised = old.with_suffix(".html")
    disguised.write_bytes(old.read_bytes() + b"<script>document.title='owned'</script>")
    with store.transaction() as write:
        write.upsert(
            dataclasses.replace(item, image_file=str(disguised.relative_to(old.parents[1])))
        )
    served = http.get("/catalog/images/clock")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    disguised.write_text("<html><script>document.title='owned'</script></html>")
    assert http.get("/catalog/images/clock").status_code == 404
    assert http.get("/catalog/images/clock%0A").status_code == 422


def test_an_item_page_adds_and_removes_photos(http, anonymous, store, featurizer, sample_catalog):
    _upload(http, sample_catalog.parent / "coffee.png", name="Coffee")
    page = http.get("/catalog/items/coffee")
    assert page.status_code == 200 and "Photos (1 of at most 8)" in page.text
    assert "Remove this photo" not in page.text, "the last photo is removed with the item"

    second = sample_catalog.parent / "rocket.png"
    added = http.post(
        "/catalog/items/coffee/photos",
        files={"image": (second.name, second.read_bytes(), "image/png")},
    )
    assert added.status_code == 303
    assert added.headers["location"] == "/catalog/items/coffee?notice=photo%20added"
    first, extra = store.photos("coffee")
    (_, matrix) = store.vectors(featurizer.model_id, DEFAULT_RECIPE.recipe_id, ["coffee"])
    assert matrix[0].shape[0] == 2 * DEFAULT_RECIPE.views, "both photos are searchable"
    page = http.get("/catalog/items/coffee?notice=photo%20added")
    assert page.text.count('class="card item photo"') == 2 and "Photo added." in page.text
    served = http.get(f"/catalog/images/coffee/{extra.image_sha256}")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    stored, given = decode_image(served.content), decode_image(second.read_bytes())
    assert stored.shape[0] <= given.shape[0] and stored.shape[1] <= given.shape[1], "cropped"
    assert anonymous.get(f"/catalog/images/coffee/{'0' * 64}").status_code == 404

    gone = http.post(f"/catalog/items/coffee/photos/{first.image_sha256}/delete")
    assert gone.status_code == 303
    assert [p.image_sha256 for p in store.photos("coffee")] == [extra.image_sha256]
    assert store.get("coffee").image_sha256 == extra.image_sha256, "the cover moved on"
    last = http.post(f"/catalog/items/coffee/photos/{extra.image_sha256}/delete")
    assert last.status_code == 409 and "remove the item instead" in last.text
    assert len(store.photos("coffee")) == 1
    broken = http.post(
        "/catalog/items/coffee/photos",
        files={"image": ("shelf.png", b"\x89PNG\r\n\x1a\n" + b"no png" * 50, "image/png")},
    )
    assert broken.status_code == 422 and len(store.photos("coffee")) == 1
    said = broken.text.split('id="image-error"', 1)[1].split("</p>", 1)[0]
    assert "shelf.png" in said, "said beside the photo field"
    assert 'aria-describedby="image-error"' in broken.text

    refused = anonymous.post(
        "/catalog/items/coffee/photos",
        files={"image": (second.name, second.read_bytes(), "image/png")},
    )
    assert refused.status_code == 401 and len(store.photos("coffee")) == 1


def test_the_json_api_lists_adds_and_removes_photos(http, anonymous, store, sample_catalog):
    _upload(http, sample_catalog.parent / "coffee.png", name="Coffee")
    headers = {"X-CSRF-Token": http.csrf}
    item = anonymous.get("/api/items/coffee").json()
    assert item["name"] == "Coffee" and len(item["photos"]) == 1
    assert item["photos"][0]["origin"] == "import"

    rocket = sample_catalog.parent / "rocket.png"
    files = {"image": (rocket.name, rocket.read_bytes(), "image/png")}
    added = http.post("/api/items/coffee/photos", files=files, headers=headers)
    assert added.status_code == 201
    photos = added.json()["photos"]
    assert [p["origin"] for p in photos] == ["import", "added"]
    assert http.get(photos[1]["url"]).headers["content-type"] == "image/png"

    broken = {"image": ("x.png", b"not an image", "image/png")}
    rejected = http.post("/api/items/coffee/photos", files=broken, headers=headers)
    assert rejected.status_code == 422 and "x.png" in rejected.json()["detail"]
    unknown = http.post("/api/items/ghost/photos", files=files, headers=headers)
    assert unknown.status_code == 404

    url = f"/api/items/coffee/photos/{photos[0]['sha256']}"
    assert anonymous.delete(url).status_code == 401
    left = http.delete(url, headers=headers)
    assert left.status_code == 200 and [p["origin"] for p in left.json()["photos"]] == ["added"]
    last = http.delete(f"/api/items/coffee/photos/{photos[1]['sha256']}", headers=headers)
    assert last.status_code == 409 and len(store.photos("coffee")) == 1
    assert http.delete("/api/items/coffee/photos/not-a-hash", headers=headers).status_code == 422


def _fill(store, count: int) -> None:
    """``count`` items straight into the catalog (no photos needed to browse them)."""
    with store.transaction() as write:
        for n in range(count):
            sha = f"{n:064x}"
            name = f"{('Oat drink', 'Rye bread', 'Green tea')[n % 3]} {n}"
            item = CatalogItem(f"sku-{n:03d}", name, 1.0, "EUR", n % 4 != 0, sha, f"{sha}.png")
            write.upsert(item)


def test_the_catalog_is_browsed_a_page_at_a_time_and_searched(anonymous, http, store):
    _fill(store, 120)
    first = anonymous.get("/catalog")
    assert first.text.count('class="card item"') == 48 and "120 items" in first.text
    assert 'id="previous-page"' not in first.text
    assert 'href="/catalog/items/sku-000"' in first.text
    assert 'id="upload-form"' not in first.text and 'id="edit-form"' not in first.text
    second = anonymous.get(_link(first.text, "next-page"))
    assert 'data-item-id="sku-048"' in second.text and 'data-item-id="sku-047"' not in second.text
    third = anonymous.get(_link(second.text, "next-page"))
    assert third.text.count('class="card item"') == 24 and 'id="next-page"' not in third.text
    back = anonymous.get(_link(third.text, "previous-page"))
    assert back.text.count('class="card item"') == 48 and 'data-item-id="sku-048"' in back.text
    assert 'id="previous-page"' in back.text and 'id="next-page"' in back.text

    tea = anonymous.get("/catalog", params={"q": "green"})
    assert tea.text.count('class="card item"') == 40 and "Oat drink" not in tea.text
    assert "40 of 120 items match" in tea.text, "the count says what the search found"
    both = anonymous.get("/catalog", params={"q": "gree 11"})  # every word, as a prefix
    assert [m for m in ("Green tea 11", "Green tea 110") if m in both.text] == [
        "Green tea 11",
        "Green tea 110",
    ]
    by_id = anonymous.get("/catalog", params={"q": "sku-11"})
    assert by_id.text.count('class="card item"') == 10
    gone = anonymous.get("/catalog", params={"q": "nothing", "available": "no"})
    assert "No item matches this search." in gone.text and "0 of 120 items match" in gone.text
    beyond = anonymous.get("/catalog", params={"after": "zzzz"})
    assert "No more items this way" in beyond.text and "catalog is empty" not in beyond.text
    unavailable = anonymous.get("/catalog", params={"available": "no"})
    assert unavailable.text.count('class="card item"') == 30
    assert "30 of 120 items match" in unavailable.text
    assert 'data-available="true"' not in unavailable.text

    page = anonymous.get("/catalog/items/sku-001")
    assert 'id="edit-form"' not in page.text and "Sign in</a> to edit" in page.text
    assert "/login?next=/catalog/items/sku-001" in page.text
    admin_page = http.get("/catalog/items/sku-001")
    assert 'id="edit-form"' in admin_page.text and 'id="delete-form"' in admin_page.text


def _link(page: str, link_id: str) -> str:
    import html
    import re

    return html.unescape(re.search(rf'id="{link_id}" rel="\w+" href="([^"]+)"', page).group(1))
