"""Errors stay inside the app: pages answer a browser with a page in the app's look, the
JSON API keeps answering JSON."""

import pytest

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.mark.parametrize(
    ("path", "status", "title", "says"),
    [
        ("/nope", 404, "Not found", "There is no page at this address."),
        ("/catalog/items/ghost", 404, "Not found", "no item “ghost” in the catalog"),
        ("/devices/bad%20id!", 422, "Something in that request is not valid", "device id"),
        ("/devices/cam/views/12", 404, "Not found", "is not kept"),
    ],
)
def test_a_browser_gets_a_page_in_the_apps_look(anonymous, path, status, title, says):
    page = anonymous.get(path, headers=HTML)
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert f'data-status="{status}"' in page.text and f"<h1>{title}</h1>" in page.text
    assert says in page.text and 'href="/catalog"' in page.text
    assert "pattern" not in page.text and "\\A" not in page.text, "no regex on a page"


def test_the_api_and_other_clients_keep_json(anonymous):
    missing = anonymous.get("/api/items/ghost", headers=HTML)
    assert missing.status_code == 404 and "ghost" in missing.json()["detail"]
    unknown = anonymous.get("/nope")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}
    invalid = anonymous.get("/api/devices/bad%20id!/matches")
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"][-1] == "device_id"


def test_an_upload_past_the_body_limit_is_a_page_for_a_browser(http):
    huge = b"\0" * (4 * 1024 * 1024 * 4)
    answer = http.post(
        "/catalog/items", files={"image": ("huge.png", huge, "image/png")}, headers=HTML
    )
    assert answer.status_code == 413
    assert "<h1>That file is too large</h1>" in answer.text, answer.text[:200]


def test_a_bug_is_a_page_in_the_apps_look_and_logged(anonymous, monkeypatch, caplog):
    from edgelens.webapp.services import live

    async def broken(**_: object) -> None:
        raise RuntimeError("a bug in listing devices")

    monkeypatch.setattr(live, "list_devices", broken)
    page = anonymous.get("/", headers=HTML)
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert 'data-status="500"' in page.text and "The error is logged" in page.text
    assert "RuntimeError" not in page.text and "Traceback" not in page.text, "nothing internal"
    assert "GET / → 500" in caplog.text and "a bug in listing devices" in caplog.text
