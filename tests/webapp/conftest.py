"""The dashboard served for real (uvicorn on a free port, in a thread) with a private Redis."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn

from edgelens.demo.servers import free_port
from edgelens.featurizer.runtime import Featurizer
from edgelens.settings import Settings
from edgelens.testing.browser import headless_chromium
from edgelens.testing.web import ADMIN, ADMIN_PASSWORD, UPLOAD_LIMIT, AdminClient, csrf_in, sign_in
from edgelens.webapp.app import create_app
from edgelens.webapp.services.accounts import AccountStore, accounts_path
from edgelens.wire.names import DEVICES_CHANNEL, DEVICES_KEY, matches_channel, matches_key
from edgelens.wire.records import Match, MatchRecord

BROWSER_PAGE_LOAD_S = 20


@contextmanager
def _serve(
    settings: Settings, featurizer: Featurizer | None = None, *, tls: Path | None = None
) -> Iterator[str]:
    config = uvicorn.Config(
        create_app(settings, featurizer=featurizer),
        host="127.0.0.1",
        port=free_port(),
        log_level="warning",
        timeout_graceful_shutdown=1,  # a browser's open event stream must not hold the end up
        ssl_certfile=tls / "server.crt" if tls else None,
        ssl_keyfile=tls / "server.key" if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.02)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def serve() -> Callable[..., AbstractContextManager[str]]:
    """``with serve(settings, featurizer=None, tls=None) as url``: the app under uvicorn in a
    thread; over HTTPS with ``tls``, a folder of scripts/make_ca.sh's CA and server files."""
    return _serve


@pytest.fixture
def web_settings(settings, redis_server, monkeypatch) -> Settings:
    monkeypatch.setenv("EDGELENS_REDIS_URL", redis_server.url)
    monkeypatch.setenv("EDGELENS_WEB__MAX_UPLOAD_BYTES", str(UPLOAD_LIMIT))
    web = Settings()
    accounts = AccountStore(accounts_path(web.data_dir))
    accounts.set_admin(username=ADMIN, password=ADMIN_PASSWORD)
    accounts.close()
    return web


@pytest.fixture
def live_url(serve, web_settings, featurizer) -> Iterator[str]:
    with serve(web_settings, featurizer) as url:
        yield url


@pytest.fixture
def http(live_url) -> Iterator[httpx.Client]:
    with AdminClient(base_url=live_url, timeout=10, trust_env=False) as client:
        assert sign_in(client, ADMIN, ADMIN_PASSWORD).status_code == 303
        client.csrf = csrf_in(client.get("/catalog").text)
        yield client


@pytest.fixture
def anonymous(live_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_url, timeout=10, trust_env=False) as client:
        yield client


@pytest.fixture
def redis_client(redis_server) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


def _record(device_id: str, seq: int, *item_ids: str) -> MatchRecord:
    """The first two matches verified (the second a near-duplicate), the third not looked
    for."""
    matches = [
        Match(
            item_id,
            f"{item_id} name",
            10.0 + rank,
            "EUR",
            rank % 2 == 0,
            0.9 - rank / 10,
            (True, True, None)[rank % 3],
        )
        for rank, item_id in enumerate(item_ids or ("coffee", "chelsea"))
    ]
    return MatchRecord(device_id, seq, time.time(), "model-x", 42.0 + seq, matches, {"search": 1.0})


@pytest.fixture
def make_record() -> Callable[..., MatchRecord]:
    """``make_record(device_id, seq, *item_ids)``: a record as the worker writes it."""
    return _record


@pytest.fixture
def push_record(redis_client) -> Callable[[MatchRecord], None]:
    """Store and announce a record, as the worker does (LPUSH, then PUBLISH)."""

    def push(record: MatchRecord) -> None:
        payload = record.to_json()
        redis_client.lpush(matches_key(record.device_id), payload)
        redis_client.publish(matches_channel(record.device_id), payload)

    return push


@pytest.fixture
def set_status(redis_client) -> Callable[..., dict]:
    """Write and announce a device status, as the worker does."""

    def set_(device_id: str, state: str, **extra: object) -> dict:
        status = {"device_id": device_id, "state": state, "model_id": "model-x", "ts": time.time()}
        status.update(extra)
        payload = json.dumps(status)
        redis_client.hset(DEVICES_KEY, device_id, payload)
        redis_client.publish(DEVICES_CHANNEL, payload)
        return status

    return set_


@pytest.fixture
def browser(live_url, tmp_path):
    """Headless Chromium; it depends on the server so it is closed before the server stops."""
    driver = headless_chromium(tmp_path / "chromium")
    driver.set_page_load_timeout(BROWSER_PAGE_LOAD_S)
    yield driver
    driver.quit()
