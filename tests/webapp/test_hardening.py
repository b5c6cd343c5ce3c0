"""One device or one visitor cannot take the dashboard down, nor keep what it should lose:
hostile statuses break no page, security headers, guarded API docs, atomic sign-in limits,
revocable sessions, bounded metric labels and an owner-only accounts file."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgelens.catalog.store import CatalogStore
from edgelens.testing.statuses import GOOD, HOSTILE
from edgelens.testing.web import ADMIN, ADMIN_PASSWORD, csrf_in, sign_in
from edgelens.webapp.metrics import METHODS, OTHER_METHOD
from edgelens.webapp.security import CONTENT_SECURITY_POLICY
from edgelens.webapp.services import accounts as accounts_module
from edgelens.webapp.services.accounts import AccountStore, accounts_path
from edgelens.wire.names import DEVICES_KEY

HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


def _has_security_headers(answer: httpx.Response) -> bool:
    return all(answer.headers.get(name) == value for name, value in HEADERS.items())


@pytest.fixture
def private_url(serve, web_settings, featurizer) -> Iterator[str]:
    private = web_settings.model_copy(
        update={"web": web_settings.web.model_copy(update={"public_dashboard": False})}
    )
    with serve(private, featurizer) as url:
        yield url


@pytest.fixture
def count_password_checks(monkeypatch) -> list[str]:
    """Every password the accounts check (scrypt runs), in the server's threads."""
    checked: list[str] = []
    lock = threading.Lock()
    real = accounts_module.verify_password

    def counting(password: str, stored: str) -> bool:
        with lock:
            checked.append(password)
        return real(password, stored)

    monkeypatch.setattr(accounts_module, "verify_password", counting)
    return checked


def _guess(base_url: str, username: str, password: str, address: str) -> httpx.Response:
    """A sign-in from ``address`` (as a trusted proxy on loopback reports it)."""
    with httpx.Client(
        base_url=base_url, timeout=30, trust_env=False, headers={"x-forwarded-for": address}
    ) as client:
        return sign_in(client, username, password)


# -- security headers ------------------------------------------------------------------


def test_hostile_statuses_in_redis_break_no_page(anonymous, redis_client):
    """Written straight into the devices hash (the worker refuses them: an older worker,
    or anyone with Redis, may not have): each page and the API still answer, leaving out
    what they cannot read."""
    for i, status in enumerate(HOSTILE.values()):
        redis_client.hset(DEVICES_KEY, f"bad-{i}", json.dumps({"device_id": f"bad-{i}", **status}))
    redis_client.hset(DEVICES_KEY, "junk", "\xff{not json")
    redis_client.hset(DEVICES_KEY, "good", json.dumps({**GOOD, "device_id": "good"}))
    home = anonymous.get("/")
    assert home.status_code == 200 and 'data-device-id="good"' in home.text
    assert [d["device_id"] for d in anonymous.get("/api/devices").json()] == ["good"]
    for device_id in (*(f"bad-{i}" for i in range(len(HOSTILE))), "junk"):
        assert anonymous.get(f"/devices/{device_id}").status_code == 200, device_id


def test_every_response_carries_the_security_headers(anonymous, http):
    answers = [
        anonymous.get("/"),
        anonymous.get("/catalog"),
        anonymous.get("/login"),
        anonymous.get("/static/style.css"),
        anonymous.get("/healthz"),
        anonymous.get("/metrics"),
        anonymous.get("/api/devices"),
        anonymous.get("/no/such/page"),
        anonymous.post("/catalog/items/clock/delete"),  # 401
        http.post("/catalog/items/nothing/delete"),  # 404
        sign_in(anonymous, ADMIN, "wrong password"),  # 401 page
    ]
    for answer in answers:
        assert _has_security_headers(answer), (answer.request.url, answer.headers)


def test_event_streams_keep_streaming_with_the_headers(anonymous, set_status):
    set_status("cam", "online")
    with anonymous.stream("GET", "/api/devices/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert _has_security_headers(stream)
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("data:")).find('"cam"') > 0
        set_status("cam", "offline")
        pushed = next(line for line in lines if line.startswith("data:") and "offline" in line)
        assert '"cam"' in pushed, "a status pushed after the stream opened arrives"


# -- API docs --------------------------------------------------------------------------


def test_api_docs_and_schema_need_sign_in_on_a_private_dashboard(private_url):
    with httpx.Client(base_url=private_url, timeout=10, trust_env=False) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 401, path
            page = client.get(path, headers={"accept": "text/html"})
            assert page.status_code == 303 and page.headers["location"] == f"/login?next={path}"
        assert sign_in(client, ADMIN, ADMIN_PASSWORD).status_code == 303
        schema = client.get("/openapi.json")
        assert schema.status_code == 200 and "/api/devices" in schema.json()["paths"]
        docs = client.get("/docs")
        assert docs.status_code == 200 and client.get("/redoc").headers["location"] == "/docs"
    assert 'data-path="/api/devices/{device_id}/matches"' in docs.text
    assert 'id="schema-MatchRecord"' in docs.text, "the models are described too"
    assert "<script" not in docs.text, "rendered on the server: no scripts at all"
    links = re.findall(r'(?:src|href)="(https?:[^"]*)"', docs.text)
    assert all(link.startswith(private_url) for link in links), "nothing from another site"


# -- sign-in limits --------------------------------------------------------------------


def test_concurrent_wrong_guesses_reach_the_password_check_at_most_the_limit(
    live_url, count_password_checks
):
    """40 guesses at once from one address: only 5 are checked (the others are refused
    without running scrypt), and then the right password waits too."""
    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(
            pool.map(
                lambda i: _guess(live_url, ADMIN, f"wrong guess {i}", "203.0.113.7"), range(40)
            )
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * 5 + [429] * 35
    assert len(count_password_checks) == 5
    assert _guess(live_url, ADMIN, ADMIN_PASSWORD, "203.0.113.7").status_code == 429


def test_an_account_guessed_from_many_addresses_is_limited_alike_whether_it_exists(
    live_url, count_password_checks
):
    for name in (ADMIN, "nobody"):
        for i in range(5):
            assert _guess(live_url, name, "wrong password", f"198.51.100.{i}").status_code == 401
        refused = _guess(live_url, name, ADMIN_PASSWORD, "198.51.100.99")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert "Too many failed sign-ins" in refused.text
    assert len(count_password_checks) == 10, "refused attempts run no scrypt"
    assert _guess(live_url, "someone-else", "wrong password", "198.51.100.99").status_code == 401


def test_an_address_guessing_many_accounts_is_limited(live_url):
    for i in range(20):
        assert _guess(live_url, f"user-{i}", "wrong password", "192.0.2.1").status_code == 401
    assert _guess(live_url, ADMIN, ADMIN_PASSWORD, "192.0.2.1").status_code == 429
    assert _guess(live_url, ADMIN, ADMIN_PASSWORD, "192.0.2.2").status_code == 303, "others not"


# -- sessions and CSRF -----------------------------------------------------------------


def test_a_cookie_copied_before_sign_out_cannot_delete_afterwards(
    http, live_url, web_settings, sample_catalog
):
    photo = (sample_catalog.parent / "clock.png").read_bytes()
    assert http.post("/catalog/items", files={"image": ("clock.png", photo)}).status_code == 303
    copied = {"edgelens_session": http.cookies["edgelens_session"]}
    with httpx.Client(base_url=live_url, timeout=10, trust_env=False, cookies=copied) as thief:
        assert thief.get("/catalog").text.count(f'id="signed-in">{ADMIN}<') == 1, "works before"
        assert http.post("/logout").status_code == 303
        stolen = thief.post("/catalog/items/clock/delete", data={"csrf_token": http.csrf})
        assert stolen.status_code == 401
        assert 'id="signed-in"' not in thief.get("/catalog").text
    store = CatalogStore(web_settings.catalog_url)
    assert "clock" in {item.item_id for item in store.items()}
    store.close()


def test_a_new_password_ends_the_sessions_signed_in_with_the_old_one(http, web_settings):
    assert http.post("/catalog/items/nothing/delete").status_code == 404, "signed in"
    accounts = AccountStore(accounts_path(web_settings.data_dir))  # as `web add-admin` does
    accounts.set_admin(username=ADMIN, password="a brand new passphrase")
    accounts.close()
    assert http.post("/catalog/items/nothing/delete").status_code == 401


def test_sign_in_rotates_the_csrf_token(anonymous):
    before = csrf_in(anonymous.get("/login").text)
    answer = anonymous.post(
        "/login", data={"csrf_token": before, "username": ADMIN, "password": ADMIN_PASSWORD}
    )
    assert answer.status_code == 303
    old = anonymous.post("/catalog/items/nothing/delete", data={"csrf_token": before})
    assert old.status_code == 403
    after = csrf_in(anonymous.get("/catalog").text)
    assert after != before
    new = anonymous.post("/catalog/items/nothing/delete", data={"csrf_token": after})
    assert new.status_code == 404, "the new token passes"


def test_an_accounts_file_of_an_older_version_is_migrated(tmp_path):
    path = tmp_path / "accounts.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE admins (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, "
            "created_at REAL NOT NULL)"
        )
    db.close()
    accounts = AccountStore(path)
    accounts.set_admin(username="ops", password="a long passphrase")
    assert accounts.session_version("ops") == 0
    accounts.end_sessions("ops")
    accounts.set_admin(username="ops", password="another passphrase")
    assert accounts.session_version("ops") == 2
    assert accounts.session_version("nobody") is None
    accounts.close()


# -- metrics ---------------------------------------------------------------------------


def _request_series(text: str) -> set[tuple[str, str, str]]:
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"])
        for family in text_string_to_metric_families(text)
        if family.name == "edgelens_web_requests"
        for s in family.samples
        if s.name == "edgelens_web_requests_total"
    }


def test_made_up_methods_and_paths_add_no_metric_series(anonymous):
    anonymous.get("/")
    for i in range(3000):
        anonymous.request(f"MADEUP{i}", "/" if i % 2 else f"/made/up/{i}")
    series = _request_series(anonymous.get("/metrics").text)
    assert {method for method, _, _ in series} <= METHODS | {OTHER_METHOD}
    assert {route for method, route, _ in series if method == OTHER_METHOD} == {"/", "unmatched"}
    assert len(series) < 10


# -- the accounts file -----------------------------------------------------------------


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_accounts_file_and_its_journals_are_owner_only(tmp_path):
    previous = os.umask(0o022)  # the usual one, which leaves new files world-readable
    try:
        path = accounts_path(tmp_path / "data")
        accounts = AccountStore(path)
        accounts.set_admin(username="ops", password="a long passphrase")
        assert _mode(path) == 0o600
        with sqlite3.connect(path) as db:  # a WAL beside it gets the file's mode
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("UPDATE admins SET created_at = 0")
            wal = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
            assert [_mode(file) for file in wal] == [0o600, 0o600]
        db.close()
        accounts.close()

        older = tmp_path / "older.sqlite3"
        sqlite3.connect(older).close()
        older.chmod(0o644)
        AccountStore(older).close()
        assert _mode(older) == 0o600, "a file left readable by an older version is tightened"
    finally:
        os.umask(previous)
