"""Several photos and a manifest added from the catalog page, in the background."""

import time

import pytest

from edgelens.catalog.store import CatalogStore

PHOTOS = ("coffee", "rocket", "clock")


@pytest.fixture
def store(web_settings):
    catalog = CatalogStore(web_settings.catalog_url)
    yield catalog
    catalog.close()


def _photo(sample_catalog, name: str) -> tuple[str, tuple[str, bytes, str]]:
    data = (sample_catalog.parent / f"{name}.png").read_bytes()
    return ("files", (f"{name}.png", data, "image/png"))


def _finished(http, location: str) -> dict:
    job_id = location.rsplit("/", 1)[1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = http.get(f"/api/imports/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError("the import did not finish")


def test_photos_and_a_manifest_are_imported_in_the_background(
    http, anonymous, store, sample_catalog
):
    files = [_photo(sample_catalog, name) for name in PHOTOS]
    manifest = "id,name,price,image\ncup,Coffee cup,3.5,coffee.png\nlaunch,Rocket,,rocket.png\n"
    files.append(("files", ("items.csv", manifest.encode(), "text/csv")))
    started = http.post("/catalog/imports", files=files)
    assert started.status_code == 303, started.text
    assert started.headers["location"].startswith("/catalog/imports/")
    job = _finished(http, started.headers["location"])
    assert (job["state"], job["total"], job["handled"], job["added"]) == ("done", 2, 2, 2)
    assert store.get("cup").name == "Coffee cup" and store.get("cup").price == 3.5
    assert store.get("launch").name == "Rocket" and len(store) == 2, "the manifest decides"
    page = http.get(started.headers["location"])
    assert "Done: 2 added" in page.text and "<progress" in page.text

    plain = [_photo(sample_catalog, "clock")]
    job = _finished(http, http.post("/catalog/imports", files=plain).headers["location"])
    assert job["added"] == 1 and store.get("clock").name == "clock", "no manifest: by file"

    assert anonymous.post("/catalog/imports", files=plain).status_code == 401
    text = [("files", ("notes.txt", b"hello", "text/plain"))]
    refused = http.post("/catalog/imports", files=text, headers={"Accept": "text/html"})
    assert refused.status_code == 422 and "neither a photo nor a manifest" in refused.text


def test_a_manifest_that_cannot_be_read_fails_the_import_and_says_why(http, store, sample_catalog):
    files = [
        _photo(sample_catalog, "coffee"),
        ("files", ("items.json", b"{not json", "application/json")),
    ]
    job = _finished(http, http.post("/catalog/imports", files=files).headers["location"])
    assert job["state"] == "failed" and "cannot read manifest" in job["error"]
    assert len(store) == 0
    assert http.get("/api/imports/" + "0" * 32).status_code == 404
