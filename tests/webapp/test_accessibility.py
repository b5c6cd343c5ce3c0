"""Every page on a desk and on a phone, in headless Chromium: nothing wider than the
window, axe-core finds nothing serious or critical, and every field's border stands out
from what is around it (3:1, WCAG 1.4.11: the axe-core that axe-selenium-python bundles
checks only text)."""

from __future__ import annotations

import dataclasses
import re
import time

import cv2
import numpy as np
import pytest

from edgelens.catalog.ingest import add_items
from edgelens.catalog.sources import collect_sources
from edgelens.catalog.store import CatalogStore
from edgelens.testing.browser import CHROMIUM, sign_in
from edgelens.testing.live import wait_for
from edgelens.testing.web import ADMIN, ADMIN_PASSWORD
from edgelens.wire.names import ROLLOUT_KEY, view_key
from edgelens.wire.rollout import Rollout

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium (`make setup` installs it)"
)

WIDTHS = (1400, 400)  # a desk, a phone
HEIGHT = 900
SERIOUS = {"serious", "critical"}
FIELD_CONTRAST = 3.0
ITEMS = ("coffee", "rocket", "astronaut", "chelsea")


@pytest.fixture
def pages_with_content(
    web_settings, featurizer, sample_catalog, push_record, make_record, set_status, redis_client
):
    """A few catalog items; a device whose last frame came with its view (so a signed-in
    admin sees the correction form); a model rollout under way."""
    store = CatalogStore(web_settings.catalog_url)
    try:
        sources = [s for s in collect_sources([sample_catalog]) if s.item_id in ITEMS]
        add_items(
            store=store, featurizer=featurizer, sources=sources, images_dir=web_settings.images_dir
        )
    finally:
        store.close()
    set_status("cam", "online", fps=14.5, featurize_ms=8.31, dropped=3, suppressed=120)
    set_status("a-device-with-a-rather-long-name", "offline", provider="CPUExecutionProvider")
    view = cv2.imencode(".jpg", np.full((240, 320, 3), 128, np.uint8))[1].tobytes()
    redis_client.set(view_key("cam", 1), view)
    push_record(dataclasses.replace(make_record("cam", 1, *ITEMS), view=True))
    # a model rollout under way: the dashboard shows its panel
    redis_client.hset(ROLLOUT_KEY, mapping=Rollout("model-a", "model-b", time.time()).to_redis())


def _axe(driver) -> list[dict]:
    """axe-core's serious and critical violations on the page shown."""
    from axe_selenium_python import Axe

    axe = Axe(driver)
    axe.inject()
    results = axe.run()
    return [v for v in results["violations"] if v["impact"] in SERIOUS]


def _describe(violations: list[dict]) -> str:
    return "; ".join(
        f"{v['id']} ({v['impact']}): {', '.join(t for n in v['nodes'] for t in n['target'])}"
        for v in violations
    )


# Each visible field: its name, its border colour, and the colour behind it (the first
# ancestor with a background).
FIELDS_JS = """
const behind = el => {
  for (; el; el = el.parentElement) {
    const colour = getComputedStyle(el).backgroundColor;
    if (colour !== 'rgba(0, 0, 0, 0)') return colour;
  }
  return 'rgb(255, 255, 255)';
};
return [...document.querySelectorAll('input, select, textarea')]
  .filter(f => !['hidden', 'checkbox', 'radio'].includes(f.type) && f.offsetParent)
  .map(f => [f.name || f.type, getComputedStyle(f).borderTopColor, behind(f.parentElement)]);
"""


def _luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in re.findall(r"\d+", rgb)[:3]]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: str, second: str) -> float:
    """WCAG's contrast ratio of two ``rgb(...)`` colours."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_contrast_is_the_wcag_ratio():
    assert contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)") == pytest.approx(21)
    assert contrast("rgb(107, 114, 128)", "rgb(245, 246, 248)") == pytest.approx(4.47, abs=0.01)


def _check(driver, url: str, found: list[str]) -> None:
    """Open ``url`` at each width; note what overflows, what axe finds and which field's
    border is too faint."""
    for width in WIDTHS:
        driver.set_window_size(width, HEIGHT)
        driver.get(url)
        inner = driver.execute_script("return window.innerWidth")
        assert inner == width, f"the window is {inner} px wide, not {width}"
        scroll = driver.execute_script("return document.documentElement.scrollWidth")
        if scroll > inner:
            found.append(f"{url} at {width} px: {scroll} px wide")
        serious = _axe(driver)
        if serious:
            found.append(f"{url} at {width} px: {_describe(serious)}")
    for name, border, background in driver.execute_script(FIELDS_JS):
        ratio = contrast(border, background)
        if ratio < FIELD_CONTRAST:
            found.append(f"{url}: field {name!r} border {border} on {background}: {ratio:.2f}:1")


def test_every_page_fits_a_phone_and_has_no_serious_accessibility_violation(
    browser, live_url, pages_with_content
):
    found: list[str] = []
    for path in ("/login", "/", "/devices/cam", "/catalog", "/catalog/items/coffee", "/nope"):
        _check(browser, f"{live_url}{path}", found)
    sign_in(browser, live_url, username=ADMIN, password=ADMIN_PASSWORD)
    for path in ("/", "/devices/cam", "/catalog", "/catalog/items/coffee", "/nope", "/docs"):
        _check(browser, f"{live_url}{path}", found)
    assert not found, "\n".join(found)


MIN_VIEW_PX = 120  # wide enough to recognise the item in
VIEW_LOADED_JS = "return document.querySelector('[data-field=view-image]').naturalWidth > 0"
BESIDE_JS = """
const box = selector => document.querySelector(selector).getBoundingClientRect();
const top = box('#latest [data-field=matches] > li:first-child');
const view = box('#latest [data-field=view] img');
return [top.right, top.top, top.bottom, view.left, view.right, view.top, view.bottom, view.width];
"""


def test_the_camera_view_stands_beside_the_answer_on_a_desk_and_on_a_phone(
    browser, live_url, pages_with_content
):
    """The person at the shelf sees what the camera saw and what it is at one glance: the
    view to the right of the first answer, level with it, at either width."""
    for width in WIDTHS:
        browser.set_window_size(width, HEIGHT)
        browser.get(f"{live_url}/devices/cam")
        wait_for(lambda: browser.execute_script(VIEW_LOADED_JS))
        right, top, bottom, view_left, view_right, view_top, view_bottom, view_width = (
            browser.execute_script(BESIDE_JS)
        )
        assert view_left >= right, f"at {width} px the view is not right of the answer"
        assert view_top < bottom and view_bottom > top, f"at {width} px it is not level with it"
        assert view_right <= width and view_width >= MIN_VIEW_PX, f"at {width} px: too small"
