"""Who may do what on the dashboard: sign-in for every state-changing route, CSRF,
private mode, production secrets; plus its health and metrics endpoints."""

from __future__ import annotations

import httpx
import pytest
from fastapi.routing import APIRoute
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from edgelens.catalog.store import CatalogStore
from edgelens.errors import ConfigError
from edgelens.testing.web import ADMIN, ADMIN_PASSWORD, csrf_in, sign_in
from edgelens.webapp.app import ROUTERS, create_app
from edgelens.webapp.security import LoginThrottle

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def _mutating_paths() -> list[tuple[str, str]]:
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    found = [
        (method, route.path.replace("{item_id}", "clock"))
        for route in routes
        for method in sorted(route.methods & MUTATING)
        if route.path != "/login"
    ]
    assert len(found) >= 4, "the catalog's three forms and sign-out at least"
    return found


def test_every_state_changing_route_needs_a_signed_in_admin(
    anonymous, http, web_settings, sample_catalog
):
    photo = (sample_catalog.parent / "clock.png").read_bytes()
    assert http.post("/catalog/items", files={"image": ("clock.png", photo)}).status_code == 303
    store = CatalogStore(web_settings.catalog_url)
    before = store.items()
    token = csrf_in(anonymous.get("/login").text)
    for method, path in _mutating_paths():
        api = anonymous.request(method, path, data={"csrf_token": token, "name": "x"})
        assert api.status_code == 401, (method, path)
        browser = anonymous.request(
            method, path, data={"csrf_token": token}, headers={"accept": "text/html"}
        )
        assert browser.status_code == 303 and browser.headers["location"].startswith("/login")
    assert store.items() == before, "nothing changed"
    store.close()


def test_signed_in_posts_need_the_session_csrf_token(http, web_settings, sample_catalog):
    photo = (sample_catalog.parent / "clock.png").read_bytes()
    bare = httpx.Client.post(http, "/catalog/items", files={"image": ("clock.png", photo)})
    assert bare.status_code == 403 and "CSRF" in bare.json()["detail"]
    forged = httpx.Client.post(
        http, "/catalog/items", files={"image": ("clock.png", photo)}, data={"csrf_token": "x" * 43}
    )
    assert forged.status_code == 403
    header = httpx.Client.post(
        http, "/catalog/items/clock/delete", headers={"x-csrf-token": http.csrf}
    )
    assert header.status_code == 404, "the header form of the token passes the guard"
    store = CatalogStore(web_settings.catalog_url)
    assert len(store) == 0
    store.close()


def test_sign_in_sets_a_protected_cookie_and_sign_out_ends_it(anonymous):
    wrong = sign_in(anonymous, ADMIN, "not the password")
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    assert sign_in(anonymous, "nobody", ADMIN_PASSWORD).status_code == 401
    right = sign_in(anonymous, ADMIN, ADMIN_PASSWORD)
    assert right.status_code == 303 and right.headers["location"] == "/"
    cookie = right.headers["set-cookie"].lower()
    assert "edgelens_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    page = anonymous.get("/catalog").text
    assert f'id="signed-in">{ADMIN}<' in page
    token = csrf_in(page)
    assert anonymous.post("/logout", data={"csrf_token": token}).status_code == 303
    assert (
        anonymous.post("/catalog/items/clock/delete", data={"csrf_token": token}).status_code == 401
    )


def test_sign_in_never_redirects_off_site(anonymous):
    page = anonymous.get("/login", params={"next": "//evil.example/x"})
    assert 'name="next" value="/"' in page.text
    token = csrf_in(page.text)
    answer = anonymous.post(
        "/login",
        data={
            "csrf_token": token,
            "username": ADMIN,
            "password": ADMIN_PASSWORD,
            "next": "https://evil.example",
        },
    )
    assert answer.headers["location"] == "/"


def test_a_private_dashboard_needs_sign_in_to_read(serve, web_settings, featurizer):
    private = web_settings.model_copy(
        update={"web": web_settings.web.model_copy(update={"public_dashboard": False})}
    )
    with (
        serve(private, featurizer) as url,
        httpx.Client(base_url=url, trust_env=False, timeout=30) as client,
    ):
        assert client.get("/api/devices").status_code == 401
        page = client.get("/", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/"
        assert client.get("/healthz").status_code == 200, "monitoring stays open"
        assert client.get("/static/style.css").status_code == 200
        assert sign_in(client, ADMIN, ADMIN_PASSWORD).status_code == 303
        assert client.get("/api/devices").status_code == 200


def test_production_mode_refuses_default_secrets(web_settings, redis_server):
    production = web_settings.model_copy(update={"mode": "production"})
    with pytest.raises(ConfigError, match="redis_url needs a password"):
        create_app(production)
    secret = production.model_copy(
        update={"web": production.web.model_copy(update={"secret_key": SecretStr("k" * 40)})}
    )
    with pytest.raises(ConfigError, match="redis_url needs a password"):
        create_app(secret)


def test_health_and_metrics(http, anonymous, redis_server):
    http.get("/catalog")
    health = anonymous.get("/healthz")
    assert health.status_code == 200 and health.json()["redis_ok"] is True
    samples = {
        (s.name, s.labels.get("route"), s.labels.get("status")): s.value
        for family in text_string_to_metric_families(anonymous.get("/metrics").text)
        for s in family.samples
    }
    assert samples[("edgelens_web_requests_total", "/catalog", "200")] >= 2
    assert samples[("edgelens_web_requests_total", "/login", "303")] == 1
    redis_server.stop()
    assert anonymous.get("/healthz").status_code == 503
    redis_server.start()
    assert anonymous.get("/healthz").status_code == 200


def test_a_decompression_bomb_upload_is_422_and_changes_nothing(http, web_settings, png_bomb):
    answer = http.post("/catalog/items", files={"image": ("tiny.png", png_bomb, "image/png")})
    assert answer.status_code == 422 and "cannot decode image" in answer.text
    store = CatalogStore(web_settings.catalog_url)
    assert len(store) == 0 and not any(web_settings.images_dir.rglob("*.*"))
    store.close()


def test_repeated_failed_sign_ins_are_throttled(anonymous):
    for _ in range(5):
        assert sign_in(anonymous, ADMIN, "wrong password").status_code == 401
    blocked = sign_in(anonymous, ADMIN, ADMIN_PASSWORD)
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in blocked.text


def test_throttle_window_and_reset():
    throttle = LoginThrottle(per_account=2, per_address=3, window_s=60)
    assert throttle.reserve(account="ops", address="a", now=0) == 0
    assert throttle.reserve(account="ops", address="a", now=10) == 0
    assert throttle.reserve(account="ops", address="a", now=11) == 49  # until 60 s after 0
    assert throttle.reserve(account="ops", address="b", now=11) == 49, "per account"
    assert throttle.reserve(account="dev", address="a", now=11) == 0
    assert throttle.reserve(account="qa", address="a", now=12) == 48, "per address"
    assert throttle.reserve(account="qa", address="b", now=12) == 0
    assert throttle.reserve(account="ops", address="b", now=61) == 0, "the oldest aged out"
    throttle.succeeded(account="ops", address="b")
    assert throttle.reserve(account="ops", address="c", now=62) == 0, "a success clears it"
    assert throttle.reserve(account="ops", address="c", now=62) == 0


def test_throttle_keeps_its_tables_bounded_and_ipv6_by_its_64():
    throttle = LoginThrottle(per_account=1, per_address=1, window_s=60, max_keys=3)
    for i in range(10):
        assert throttle.reserve(account=f"user-{i}", address=f"10.0.0.{i}", now=i) == 0
    assert throttle.reserve(account="user-9", address="10.0.0.99", now=10) > 0
    assert throttle.reserve(account="user-0", address="10.0.0.98", now=10) == 0, "forgotten"
    assert len(throttle._accounts._times) == len(throttle._addresses._times) == 3
    assert throttle.reserve(account="x", address="2001:db8:1:2::1", now=20) == 0
    assert throttle.reserve(account="y", address="2001:db8:1:2:ffff::9", now=20) > 0, "same /64"
    assert throttle.reserve(account="y", address="2001:db8:1:3::1", now=20) == 0
