"""The pages in headless Chromium: live updates without a reload, and a catalog upload."""

import dataclasses
import threading
import time

import pytest

from edgelens.catalog.ingest import add_items
from edgelens.catalog.sources import collect_sources
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.sink import RedisSink
from edgelens.featurizer.preprocess import decode_image
from edgelens.testing.browser import CHROMIUM, sign_in
from edgelens.testing.catalog import index_from_catalog
from edgelens.testing.web import ADMIN, ADMIN_PASSWORD
from edgelens.wire.names import ROLLOUT_KEY
from edgelens.wire.records import Decision, Stage
from edgelens.wire.rollout import Rollout

WAIT_S = 10

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium (`make setup` installs it)"
)


def _wait(driver, condition):
    """``condition`` polled until true; an element the page replaced between finding it and
    reading it (a live update) is polled again, not a failure."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver, WAIT_S, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition)


def _click(driver, element) -> None:
    """Click ``element``, again if something else took the click: a page with many images
    still moves while they load (or fail to), and the click lands on what moved there."""
    from selenium.common.exceptions import ElementClickInterceptedException
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(
        driver, WAIT_S, poll_frequency=0.1, ignored_exceptions=(ElementClickInterceptedException,)
    ).until(lambda _: element.click() or True)


def _attribute(driver, selector: str, name: str) -> str | None:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector).get_attribute(name)


def test_pages_show_records_and_statuses_as_they_are_pushed(
    browser, live_url, push_record, make_record, set_status
):
    from selenium.webdriver.common.by import By

    set_status("cam", "online", fps=14.5, featurize_ms=8.31, dropped=3, suppressed=120)
    push_record(make_record("cam", 1, "clock", "moon"))

    def health(device_id: str) -> list[str]:
        row = f'tr[data-device-id="{device_id}"]'
        fields = ("fps", "featurize_ms", "dropped", "suppressed")
        return [
            browser.find_element(By.CSS_SELECTOR, f"{row} [data-field={field}]").text
            for field in fields
        ]

    browser.get(f"{live_url}/")
    # the technical columns are there for whoever looks after the devices, on demand
    fps = browser.find_element(By.CSS_SELECTOR, 'tr[data-device-id="cam"] [data-field=fps]')
    assert not fps.is_displayed()
    browser.find_element(By.ID, "show-tech").click()
    assert health("cam") == ["14.5", "8.3", "3", "120"], "rendered by the server"
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
    set_status("cam-2", "online", fps=30, featurize_ms=4.0, dropped=0, suppressed=7)
    set_status("cam", "offline")
    _wait(browser, lambda d: _attribute(d, 'tr[data-device-id="cam"]', "data-state") == "offline")
    rows = browser.find_elements(By.CSS_SELECTOR, "#devices tr.device")
    assert [row.get_attribute("data-device-id") for row in rows] == ["cam", "cam-2"]
    assert health("cam-2") == ["30", "4", "0", "7"], "filled by live.js from the pushed status"

    browser.get(f"{live_url}/devices/cam")
    assert _attribute(browser, "#latest", "data-seq") == "1", "rendered from the Redis list"
    assert _confidences(browser) == ["Match", "Similar"], "only the answer is a match"
    # offline: its last answer is dimmed, and the page says why
    assert _attribute(browser, "#latest", "data-stale") == "true"
    assert "offline" in browser.find_element(By.ID, "device-says").text
    opacity = "return getComputedStyle(document.querySelector('#latest .matches')).opacity"
    assert float(browser.execute_script(opacity)) < 1
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
    browser.execute_script("window.notReloaded = true")

    push_record(make_record("cam", 2, "rocket", "moon", "clock"))
    _wait(browser, lambda d: _attribute(d, "#latest", "data-seq") == "2")
    cards = browser.find_elements(By.CSS_SELECTOR, "#latest .match")
    assert [card.get_attribute("data-item-id") for card in cards] == ["rocket", "moon", "clock"]
    assert cards[0].text.split("\n") == [
        "rocket name",
        "10.00 EUR",
        "available",
        "Match",  # the answer, its photo seen in the view
    ]
    # moon verified too (a near-duplicate): only the answer is marked; clock not looked at
    assert _confidences(browser) == ["Match", "Similar", "Similar"]
    assert _attribute(browser, "#latest .confidence", "title") == "similarity 90.0 %"
    assert "44 ms" in browser.find_element(By.ID, "latest").text
    assert float(_attribute(browser, "#latest", "data-shown-at")) > 0
    history = browser.find_elements(By.CSS_SELECTOR, "#history .record")
    assert [row.get_attribute("data-seq") for row in history] == ["2", "1"]

    set_status("cam", "online", fps=12, featurize_ms=8.31)
    _wait(browser, lambda d: _attribute(d, "#device-status", "data-state") == "online")
    assert _attribute(browser, "#latest", "data-stale") == "false", "live again: not dimmed"
    timings = " · 12 fps · model 8.3 ms a frame"  # behind "Technical details"
    assert _attribute(browser, "#device-timings", "textContent") == timings, "from live.js"
    assert browser.find_element(By.ID, "device-says").text == "The camera is on."
    set_status("cam", "online", camera="camera can't open 0: retrying", fps=12, featurize_ms=8.31)
    _wait(browser, lambda d: "retrying" in d.find_element(By.ID, "device-says").text)
    assert browser.find_element(By.ID, "device-says").text == "Camera can't open 0: retrying."

    # the same answer again: one history line for the run, counted
    push_record(make_record("cam", 3, "rocket", "moon", "clock"))
    _wait(browser, lambda d: _attribute(d, "#latest", "data-seq") == "3")
    rows = browser.find_elements(By.CSS_SELECTOR, "#history .record")
    assert [(r.get_attribute("data-seq"), r.get_attribute("data-count")) for r in rows] == [
        ("3", "2"),
        ("1", "1"),
    ]
    assert "\u00d7 2" in rows[0].text and "rocket name · match" in rows[0].text
    assert browser.execute_script("return window.notReloaded") is True
    browser.refresh()  # as the server renders it
    rows = browser.find_elements(By.CSS_SELECTOR, "#history .record")
    assert [r.get_attribute("data-count") for r in rows] == ["2", "1"]
    assert _attribute(browser, "#device-timings", "textContent") == timings

    # a device that never reported: said so, not "waiting for the camera"
    browser.get(f"{live_url}/devices/ghost-cam")
    assert (
        "No device called “ghost-cam” has reported yet"
        in browser.find_element(By.ID, "device-says").text
    )


def test_the_device_page_keeps_the_newest_view_and_says_when_it_is_of_an_earlier_frame(
    browser, live_url, redis_client, push_record, make_record, set_status
):
    """A device sends its view once a view settles: the frames after it come without one,
    and the page keeps the picture, captioned with the frame it is of."""
    import cv2
    from selenium.webdriver.common.by import By

    from edgelens.samples.photos import load_photo
    from edgelens.wire.names import view_key

    def viewed(seq: int) -> None:
        jpeg = cv2.imencode(".jpg", load_photo("rocket"))[1].tobytes()
        redis_client.set(view_key("cam", seq), jpeg)
        push_record(dataclasses.replace(make_record("cam", seq, "rocket"), view=True))

    def figure() -> tuple[bool, str | None, str | None, str]:
        element = browser.find_element(By.CSS_SELECTOR, "#latest [data-field=view]")
        return (
            element.is_displayed(),
            element.get_attribute("data-seq"),
            element.get_attribute("data-earlier"),
            element.find_element(By.TAG_NAME, "figcaption").text,
        )

    set_status("cam", "online")
    viewed(1)
    browser.get(f"{live_url}/devices/cam")
    assert figure() == (True, "1", "false", "What the camera saw")
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
    push_record(make_record("cam", 2, "rocket"))  # a keep-alive: the vector alone
    _wait(browser, lambda d: _attribute(d, "#latest", "data-seq") == "2")
    shown, seq, earlier, caption = figure()
    assert (shown, seq, earlier) == (True, "1", "true"), "the picture stays"
    assert caption.startswith("What the camera saw in frame #1 at ")
    assert caption.endswith(", before this answer")
    loaded = "return document.querySelector('[data-field=view-image]').naturalWidth > 0"
    _wait(browser, lambda d: d.execute_script(loaded))
    browser.refresh()
    assert figure() == (shown, seq, earlier, caption), "as the server renders it"
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
    viewed(3)
    _wait(browser, lambda d: _attribute(d, "#latest", "data-seq") == "3")
    assert figure() == (True, "3", "false", "What the camera saw")
    no_view = "#latest [data-field=no-view]"

    # A camera set to send no pictures: said so, live and as the server renders it.
    set_status("lens-cap", "online", sends_views=False)
    push_record(make_record("lens-cap", 1, "rocket"))
    browser.get(f"{live_url}/devices/lens-cap")
    assert browser.find_element(By.CSS_SELECTOR, no_view).is_displayed()
    assert "sends no pictures" in browser.find_element(By.CSS_SELECTOR, no_view).text
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
    set_status("lens-cap", "online", sends_views=True)
    _wait(browser, lambda d: not d.find_element(By.CSS_SELECTOR, no_view).is_displayed())


def test_the_rollout_panel_counts_devices_as_they_switch(
    browser, live_url, redis_client, set_status
):
    from selenium.webdriver.common.by import By

    set_status("cam-1", "online", model_id="model-a")
    set_status("cam-2", "online", model_id="model-a")
    redis_client.hset(ROLLOUT_KEY, mapping=Rollout("model-a", "model-b", time.time()).to_redis())
    browser.get(f"{live_url}/")

    def panel() -> tuple[str, str, list[str]]:
        progress = browser.find_element(By.CSS_SELECTOR, "#rollout progress")
        problems = browser.find_elements(By.CSS_SELECTOR, "#rollout [data-field=problems] li")
        return (
            browser.find_element(By.CSS_SELECTOR, "#rollout strong").text,
            f"{progress.get_attribute('value')}/{progress.get_attribute('max')}",
            [li.text for li in problems if li.is_displayed()],
        )

    assert panel() == ("0 of 2", "0/2", []), "rendered by the server"
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
    set_status("cam-1", "online", model_id="model-b")
    _wait(browser, lambda d: panel()[0] == "1 of 2")
    set_status("cam-3", "online", model_id="model-a", model_problem="download failed: HTTP 401")
    _wait(browser, lambda d: panel()[0] == "1 of 3")
    assert panel() == ("1 of 3", "1/3", ["cam-3 could not switch: download failed: HTTP 401"])
    set_status("cam-3", "online", model_id="model-b")
    set_status("cam-2", "online", model_id="model-b")
    _wait(browser, lambda d: panel()[0] == "3 of 3")
    assert panel() == ("3 of 3", "3/3", []), "the problem went with the switch"


def test_a_first_answer_is_a_match_when_clear_and_likely_when_not(
    browser, live_url, push_record, make_record, set_status
):
    """Unverified first answers: "Likely", unless clear of every other item (the worker
    then runs no stage two, so nothing else would ever call it a match)."""
    from selenium.webdriver.common.by import By

    def unchecked(seq: int, *, clear: bool):
        record = make_record("sure-cam", seq, "clock", "moon")
        matches = [dataclasses.replace(m, verified=None) for m in record.matches]
        return dataclasses.replace(record, matches=matches, clear=clear)

    set_status("sure-cam", "online")
    push_record(unchecked(1, clear=False))
    browser.get(f"{live_url}/devices/sure-cam")
    assert _confidences(browser) == ["Likely", "Similar"]
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
    push_record(unchecked(2, clear=True))
    _wait(browser, lambda d: _attribute(d, "#latest", "data-seq") == "2")
    assert _confidences(browser) == ["Match", "Similar"], "pushed: device.js"
    rows = browser.find_elements(By.CSS_SELECTOR, "#history .record")
    assert [r.get_attribute("data-answer") for r in rows] == [
        "clock name · match",
        "clock name · likely",
    ]
    browser.refresh()
    assert _confidences(browser) == ["Match", "Similar"], "rendered: the macro"


def test_a_device_that_stopped_saying_anything_is_shown_silent_not_online(
    browser, live_url, push_record, make_record, set_status
):
    """Its broker or network gone, a device sends no "offline" either: its last status
    only grows old. Past web.device_silent_s (30 s) the pages say so and dim its answer."""
    from selenium.webdriver.common.by import By

    set_status("quiet-cam", "online", ts=time.time() - 120)
    push_record(make_record("quiet-cam", 1, "clock"))
    browser.get(f"{live_url}/devices/quiet-cam")
    assert _attribute(browser, "#device-status", "data-state") == "silent"
    assert browser.find_element(By.ID, "device-status").text == "no word"
    assert "No word from the camera since" in browser.find_element(By.ID, "device-says").text
    assert _attribute(browser, "#latest", "data-stale") == "true"
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
    set_status("quiet-cam", "online")  # it speaks again
    _wait(browser, lambda d: _attribute(d, "#device-status", "data-state") == "online")
    assert _attribute(browser, "#latest", "data-stale") == "false"
    assert browser.find_element(By.ID, "device-says").text == "The camera is on."

    browser.get(f"{live_url}/")
    row = 'tr[data-device-id="quiet-cam"]'
    assert _attribute(browser, row, "data-state") == "online"
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
    set_status("quiet-cam", "online", ts=time.time() - 29)  # silent by the next check
    _wait(browser, lambda d: _attribute(d, row, "data-state") == "silent")
    assert browser.find_element(By.CSS_SELECTOR, f"{row} .badge").text == "no word"


def _confidences(browser) -> list[str]:
    from selenium.webdriver.common.by import By

    return [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#latest .confidence")]


def test_a_confirmed_answer_updates_its_frame_in_place_and_no_match_is_said(
    browser, live_url, make_record, web_settings
):
    """Stage one, then stage two of the same frame: the cards change in place (the same
    elements, no reload); a late confirmation updates its history line, not the newer
    screen; a "no match" answer shows that state instead of cards."""
    from selenium.webdriver.common.by import By

    sink = RedisSink(str(web_settings.redis_url), matches_kept=50)
    first = make_record("cam", 1, "rocket", "moon")
    sink.push([first])
    browser.get(f"{live_url}/devices/cam")
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
    assert _attribute(browser, "#latest", "data-stage") == "first"
    assert "first answer" in browser.find_element(By.ID, "latest").text
    browser.execute_script(
        "for (const c of document.querySelectorAll('#latest .match')) c.mark = c.dataset.itemId"
    )

    moon_first = dataclasses.replace(first, matches=first.matches[::-1], stage=Stage.CONFIRMED)
    sink.push([moon_first])
    _wait(browser, lambda d: _attribute(d, "#latest", "data-stage") == "confirmed")
    cards = browser.find_elements(By.CSS_SELECTOR, "#latest .match")
    assert [c.get_attribute("data-item-id") for c in cards] == ["moon", "rocket"]
    marks = browser.execute_script(
        "return [...document.querySelectorAll('#latest .match')].map(c => c.mark)"
    )
    assert marks == ["moon", "rocket"], "the same card elements, moved"
    rows = browser.find_elements(By.CSS_SELECTOR, "#history .record")
    assert [(r.get_attribute("data-seq"), r.get_attribute("data-stage")) for r in rows] == [
        ("1", "confirmed")
    ]

    newer = make_record("cam", 2, "clock")
    sink.push([newer])
    _wait(browser, lambda d: _attribute(d, "#latest", "data-seq") == "2")
    late = dataclasses.replace(newer, seq=1, matches=first.matches, stage=Stage.CONFIRMED)
    sink.push([late])  # frame 1 again, confirmed after frame 2 was answered
    _wait(browser, lambda d: "rocket" in d.find_element(By.CSS_SELECTOR, '[data-seq="1"]').text)
    assert _attribute(browser, "#latest", "data-seq") == "2", "the newer screen stays"
    assert [
        c.get_attribute("data-item-id")
        for c in browser.find_elements(By.CSS_SELECTOR, "#latest .match")
    ] == ["clock"]

    unknown = dataclasses.replace(make_record("cam", 3, "moon"), decision=Decision.NO_MATCH)
    sink.push([unknown])
    _wait(browser, lambda d: _attribute(d, "#latest", "data-seq") == "3")
    assert browser.find_element(By.CSS_SELECTOR, "[data-field=no-match]").is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, "#latest .matches").is_displayed()
    assert "No match" in browser.find_element(By.CSS_SELECTOR, '[data-seq="3"]').text
    browser.refresh()  # as the server renders it
    assert browser.find_element(By.CSS_SELECTOR, "[data-field=no-match]").is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, "#latest .matches").is_displayed()
    sink.close()


def test_catalog_upload_through_the_form_makes_the_item_searchable(
    browser, live_url, web_settings, featurizer, sample_catalog
):
    from selenium.webdriver.common.by import By

    store = CatalogStore(web_settings.catalog_url)
    others = [s for s in collect_sources([sample_catalog]) if s.item_id != "colorwheel"][:10]
    add_items(
        store=store, featurizer=featurizer, sources=others, images_dir=web_settings.images_dir
    )
    photo = sample_catalog.parent / "colorwheel.png"

    # Anonymous: the catalog is for browsing; "Sign in" leads back here with the forms.
    browser.get(f"{live_url}/catalog")
    assert not browser.find_elements(By.ID, "upload-form")
    browser.find_element(By.ID, "sign-in").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "login-form"))
    login = browser.find_element(By.ID, "login-form")
    login.find_element(By.NAME, "username").send_keys(ADMIN)
    login.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    login.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "signed-in"))
    assert browser.current_url == f"{live_url}/catalog"

    browser.find_element(By.CSS_SELECTOR, ".upload-box summary").click()
    form = browser.find_element(By.ID, "upload-form")
    form.find_element(By.NAME, "image").send_keys(str(photo))
    form.find_element(By.NAME, "item_id").send_keys("wheel")
    form.find_element(By.NAME, "name").send_keys("Colour wheel")
    form.find_element(By.NAME, "price").send_keys("6.5")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    # Added: its page, with its photo.
    _wait(browser, lambda d: d.find_elements(By.ID, "photo-form"))
    assert browser.current_url == f"{live_url}/catalog/items/wheel?notice=added"
    assert browser.find_element(By.ID, "notice").text == "Added."
    image_loaded = "return document.querySelector('#photos img').naturalWidth > 0"
    _wait(browser, lambda d: d.execute_script(image_loaded))

    item = store.get("wheel")
    assert (item.name, item.price, item.available) == ("Colour wheel", 6.5, True)
    index = index_from_catalog(store, model_id=featurizer.model_id, dim=featurizer.dim)
    assert len(index) == len(others) + 1
    query = featurizer.embed([decode_image(photo.read_bytes())])[0]
    assert index.search(query, k=1)[0].item_id == "wheel"

    # A second photo (the wheel seen in the shop, say) added, then the first removed.
    shop_photo = sample_catalog.parent / "coffee.png"
    form = browser.find_element(By.ID, "photo-form")
    form.find_element(By.NAME, "image").send_keys(str(shop_photo))
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#photos .photo")) == 2)
    assert browser.find_element(By.ID, "notice").text == "Photo added."
    loaded = "return [...document.querySelectorAll('#photos img')].every(i => i.naturalWidth > 0)"
    _wait(browser, lambda d: d.execute_script(loaded))
    assert len(store.photos("wheel")) == 2
    browser.find_element(By.CSS_SELECTOR, "#photos .photo button.danger").click()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#photos .photo")) == 1)
    assert browser.find_element(By.ID, "notice").text == "Photo removed."
    assert not browser.find_elements(By.CSS_SELECTOR, "#photos button.danger"), "last photo"
    (kept,) = store.photos("wheel")
    assert kept.image_sha256 == store.get("wheel").image_sha256 != item.image_sha256
    store.close()


def test_device_page_survives_a_redis_restart(
    browser, live_url, redis_server, push_record, make_record
):
    from edgelens.demo.servers import RedisServer

    browser.get(f"{live_url}/devices/cam")
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
    redis_server.stop()
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "reconnecting")
    assert "Redis unavailable" in _attribute(browser, "#connection", "textContent")

    with RedisServer(port=redis_server.port):
        _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
        push_record(make_record("cam", 5, "clock"))
        _wait(browser, lambda d: _attribute(d, "#latest", "data-seq") == "5")


def test_the_page_says_reconnecting_while_redis_is_away_and_recovers(
    browser, live_url, redis_server, push_record, make_record
):
    push_record(make_record("cam", 1, "clock"))
    browser.get(f"{live_url}/devices/cam")
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")

    redis_server.stop()
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "reconnecting")
    banner = browser.find_element("id", "connection").text
    assert "Redis unavailable" in banner and "reconnecting" in banner

    redis_server.start()  # an empty Redis: the worker's next record is what shows
    _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
    push_record(make_record("cam", 2, "rocket"))
    _wait(browser, lambda d: _attribute(d, "#latest", "data-seq") == "2")


def test_pages_work_under_the_content_security_policy(
    browser, live_url, push_record, make_record, set_status
):
    """Every page loads, streams and posts with the headers on and nothing refused; the
    console check itself sees a refusal when there is one."""
    from selenium.webdriver.common.by import By

    set_status("cam", "online")
    push_record(make_record("cam", 1, "clock"))
    sign_in(browser, live_url, username=ADMIN, password=ADMIN_PASSWORD)
    for path in ("/", "/devices/cam"):
        browser.get(f"{live_url}{path}")
        _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
    for path in ("/catalog", "/docs"):
        browser.get(f"{live_url}{path}")
        assert browser.find_element(By.TAG_NAME, "h1").text
    headers = browser.execute_async_script(
        "const done = arguments[0];"
        "fetch('/').then(r => done([...r.headers].filter(([k]) => k !== 'date')))"
    )
    policy = dict(headers)["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert dict(headers)["x-content-type-options"] == "nosniff"
    assert not [e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]

    browser.execute_script(
        "const s = document.createElement('script');"
        "s.textContent = 'window.inlineRan = true'; document.head.append(s)"
    )
    assert browser.execute_script("return window.inlineRan") is None
    refused = [e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert refused, "an inline script is refused, and the console says so"


def test_an_image_carrying_a_script_never_runs_it(
    browser, live_url, web_settings, featurizer, tmp_path
):
    """PNG bytes followed by a script, imported from a manifest as ``poster.html``: stored
    and served as image/png, so Chromium shows an image and runs nothing, even when the
    image's URL is opened directly."""
    import json

    import cv2
    import numpy as np

    png = cv2.imencode(".png", np.full((40, 60, 3), 200, np.uint8))[1].tobytes()
    poster = tmp_path / "poster.html"
    poster.write_bytes(png + b"<script>document.title = 'owned'</script>")
    manifest = tmp_path / "items.json"
    manifest.write_text(json.dumps([{"id": "poster", "image": "poster.html"}]))
    store = CatalogStore(web_settings.catalog_url)
    try:
        report = add_items(
            store=store,
            featurizer=featurizer,
            sources=collect_sources([manifest]),
            images_dir=web_settings.images_dir,
        )
        assert report.added == 1
    finally:
        store.close()
    browser.get(f"{live_url}/catalog/images/poster")
    assert browser.title != "owned"
    assert browser.execute_script("return document.contentType") == "image/png"


def test_a_wrong_answer_corrected_on_the_device_page_is_answered_right_after(
    browser, live_url, web_settings, featurizer, sample_catalog, mosquitto_server, tmp_path
):
    """The real worker and broker behind the page: a view of the astronaut print whose
    catalog photo is a stand-in (another picture) is answered wrongly; the admin says what
    it is on the device page; the same view is then answered right. The item's page undoes
    the correction."""
    from pydantic import AnyUrl
    from selenium.webdriver.common.by import By

    from edgelens.catalog.models import ItemSource
    from edgelens.cloud.worker import Worker
    from edgelens.featurizer.focus import focus_view_jpeg
    from edgelens.samples.photos import load_photo
    from edgelens.testing.live import send_features, wait_for
    from edgelens.wire.features import MAX_JPEG_BYTES
    from edgelens.wire.mqtt import connect_async, make_client

    store = CatalogStore(web_settings.catalog_url)
    sources = [s for s in collect_sources([sample_catalog]) if s.item_id != "astronaut"]
    stand_in = sample_catalog.parent / "coffee.png"  # not what the print looks like
    sources += [ItemSource("astronaut", (stand_in,), name="Astronaut portrait print")]
    sources = [s for s in sources if s.item_id != "coffee"]
    add_items(
        store=store, featurizer=featurizer, sources=sources, images_dir=web_settings.images_dir
    )
    worker = Worker(web_settings.model_copy(update={"mqtt_url": AnyUrl(mosquitto_server.url)}))
    worker.start()
    device = make_client(mosquitto_server.url, client_id="shelf-cam")
    connected = threading.Event()
    device.on_connect = lambda *args: connected.set()
    connect_async(device, mosquitto_server.url)
    try:
        assert connected.wait(10) and wait_for(worker.subscribed.is_set)
        frame = load_photo("astronaut")
        view = focus_view_jpeg(frame, MAX_JPEG_BYTES)

        def show(seq: int) -> None:
            send_features(device, featurizer, frame, device="shelf-cam", seq=seq, view_jpeg=view)

        sign_in(
            browser, live_url, username=ADMIN, password=ADMIN_PASSWORD, then="/devices/shelf-cam"
        )
        _wait(browser, lambda d: d.find_elements(By.ID, "latest"))
        _wait(browser, lambda d: _attribute(d, "#connection", "data-state") == "live")
        show(1)
        _wait(browser, lambda d: _attribute(d, "#latest", "data-seq") == "1")
        first = browser.find_element(By.CSS_SELECTOR, "#latest .match").get_attribute(
            "data-item-id"
        )
        assert first != "astronaut" or _attribute(browser, "#latest", "data-decision") == "no_match"
        seen = "return document.querySelector('[data-field=view-image]').naturalWidth > 0"
        _wait(browser, lambda d: d.execute_script(seen))

        form = browser.find_element(By.ID, "correction-form")
        assert form.is_displayed() and "frame #1" in form.text
        field = form.find_element(By.NAME, "item_id")
        field.send_keys("Astro")  # searched by name
        offered = "return [...document.querySelectorAll('#item-options option')].map(o => o.value)"
        _wait(browser, lambda d: d.execute_script(offered) == ["astronaut"])
        field.clear()
        field.send_keys("astronaut")
        form.find_element(By.CSS_SELECTOR, "button[value=item]").click()
        _wait(browser, lambda d: d.find_elements(By.ID, "notice"))
        assert (
            "frame #1 shows Astronaut portrait print; this view, seen again, is answered so"
            in browser.find_element(By.ID, "notice").text
        )
        assert len(store.photos("astronaut")) == 2

        def answered_right(seq: list[int]) -> bool:
            """The next frame's answer names the print, as a match (the workers remember
            the corrected view: at once, without stage two)."""
            seq[0] += 1
            show(seq[0])
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                if _attribute(browser, "#latest", "data-seq") == str(seq[0]):
                    card = browser.find_elements(By.CSS_SELECTOR, "#latest .match")
                    if (
                        card
                        and card[0].get_attribute("data-item-id") == "astronaut"
                        and _attribute(browser, "#latest", "data-decision") == "match"
                    ):
                        return True
                time.sleep(0.05)
            return False

        sent = [1]
        assert wait_for(lambda: answered_right(sent), timeout=20)
        head = browser.find_element(By.CSS_SELECTOR, "#latest [data-field=stage]").text
        sure = browser.find_element(By.CSS_SELECTOR, "#latest .match [data-field=confidence]")
        assert (head, sure.text) == ("as corrected", "Match"), "the page says why it is sure"
        link = browser.find_element(By.CSS_SELECTOR, "#latest .match a.name")
        assert link.get_attribute("href") == f"{live_url}/catalog/items/astronaut"

        browser.get(f"{live_url}/catalog/items/astronaut")
        browser.find_element(By.CSS_SELECTOR, "#corrections button").click()
        _wait(browser, lambda d: "Correction undone." in d.find_element(By.ID, "notice").text)
        assert "undone by admin" in browser.find_element(By.ID, "corrections").text
        assert len(store.photos("astronaut")) == 1
    finally:
        device.disconnect()
        device.loop_stop()
        worker.stop()
        store.close()


def test_errors_are_pages_of_the_app(browser, live_url, tmp_path):
    """A mistyped address and an upload past the limit: both a page in the app's look,
    with its navigation, not a bare "Not Found" or "Content Too Large"."""
    from selenium.webdriver.common.by import By

    browser.get(f"{live_url}/nope")
    assert browser.find_element(By.CSS_SELECTOR, "#error-page h1").text == "Not found"
    assert browser.find_element(By.CSS_SELECTOR, "header.topbar")

    sign_in(browser, live_url, username=ADMIN, password=ADMIN_PASSWORD, then="/catalog")
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\x89PNG" + b"\0" * (4 * 1024 * 1024))
    browser.find_element(By.CSS_SELECTOR, ".upload-box summary").click()
    form = browser.find_element(By.ID, "upload-form")
    form.find_element(By.NAME, "image").send_keys(str(huge))
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "error-page"))
    assert browser.find_element(By.CSS_SELECTOR, "#error-page h1").text == "That file is too large"
    assert _attribute(browser, "#error-page", "data-status") == "413"


def test_the_catalog_is_searched_and_paged_and_a_refused_upload_keeps_what_was_typed(
    browser, live_url, web_settings, tmp_path
):
    from selenium.webdriver.common.by import By

    from edgelens.catalog.models import CatalogItem

    store = CatalogStore(web_settings.catalog_url)
    with store.transaction() as write:
        for n in range(60):
            sha = f"{n:064x}"
            name = f"{('Oat drink', 'Green tea')[n % 2]} {n}"
            write.upsert(CatalogItem(f"sku-{n:03d}", name, 1.0, "EUR", True, sha, sha))
    store.close()
    browser.get(f"{live_url}/catalog")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#catalog .item")) == 48
    _click(browser, browser.find_element(By.ID, "next-page"))
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#catalog .item")) == 12)
    _click(browser, browser.find_element(By.ID, "previous-page"))
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#catalog .item")) == 48)
    search = browser.find_element(By.ID, "search-form")
    search.find_element(By.NAME, "q").send_keys("green te")
    search.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#catalog .item")) == 30)
    assert all(
        "Green tea" in i.text for i in browser.find_elements(By.CSS_SELECTOR, "#catalog .item")
    )

    sign_in(browser, live_url, username=ADMIN, password=ADMIN_PASSWORD, then="/catalog")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a png" * 50)
    browser.find_element(By.CSS_SELECTOR, ".upload-box summary").click()
    form = browser.find_element(By.ID, "upload-form")
    form.find_element(By.NAME, "image").send_keys(str(broken))
    form.find_element(By.NAME, "item_id").send_keys("oat-new")
    form.find_element(By.NAME, "name").send_keys("Oat drink barista")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "image-error"))
    form = browser.find_element(By.ID, "upload-form")
    assert form.is_displayed(), "the form comes back open"
    said = form.find_element(By.ID, "image-error")  # beside the field, in the form
    assert "broken.png" in said.text and said.is_displayed()
    assert form.find_element(By.NAME, "image").get_attribute("aria-describedby") == "image-error"
    assert form.find_element(By.NAME, "item_id").get_attribute("value") == "oat-new"
    assert form.find_element(By.NAME, "name").get_attribute("value") == "Oat drink barista"
