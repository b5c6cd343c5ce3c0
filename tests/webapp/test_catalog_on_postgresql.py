"""Past one machine: two worker processes and the web app on one PostgreSQL catalog. A
change made on the dashboard reaches both workers by the database's own NOTIFY."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from edgelens.demo.runner import build_sample_catalog
from edgelens.demo.servers import free_port
from edgelens.samples.photos import load_photo
from edgelens.testing.live import records, wait_for
from edgelens.wire.features import FeatureMessage, encode
from edgelens.wire.mqtt import connect_async, make_client
from edgelens.wire.names import features_topic, matches_key

EDGELENS = Path(sys.executable).with_name("edgelens")
ITEMS = ("coffee", "rocket", "chelsea")


@pytest.fixture
def catalog_backend() -> str:
    return "postgresql"


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_dashboard_change_reaches_two_workers_on_one_postgresql(
    web_settings, featurizer, http, mosquitto_server, tmp_path
):
    build_sample_catalog(web_settings, featurizer, item_ids=ITEMS)
    url = web_settings.catalog_url
    # Two spellings of one server: each worker names the catalog its own way.
    urls = [url, url.replace("@127.0.0.1:", "@localhost:")]
    assert urls[0] != urls[1] and "postgresql://" in url
    ports, logs = [free_port(), free_port()], [tmp_path / "w0.log", tmp_path / "w1.log"]
    env = {
        **os.environ,
        "EDGELENS_MQTT_URL": mosquitto_server.url,
        "EDGELENS_WORKER__CATALOG_POLL_S": "300",  # only a notification can bring a change
        "NO_PROXY": "127.0.0.1,localhost",
    }
    workers = [
        subprocess.Popen(
            [str(EDGELENS), "cloud", "run"],
            env={**env, "EDGELENS_CATALOG__URL": u, "EDGELENS_WORKER__METRICS_PORT": str(port)},
            stderr=log.open("wb"),
        )
        for u, port, log in zip(urls, ports, logs, strict=True)
    ]
    rdb = redis.Redis.from_url(str(web_settings.redis_url))
    client = make_client(mosquitto_server.url, client_id="pg-device")
    connect_async(client, mosquitto_server.url)
    vector = featurizer.embed([load_photo("coffee")])[0]
    try:
        wait_for(lambda: all(_healthy(port) for port in ports), timeout=90)
        time.sleep(1.0)  # both subscribed and listening
        assert http.post("/catalog/items/coffee/delete").status_code == 303

        def applied(log: Path) -> bool:
            return "1 removed, 2 searchable" in log.read_text(errors="replace")

        wait_for(lambda: all(applied(log) for log in logs), timeout=20)
        # 20 devices, one view each (a device's older views may be skipped for its newest):
        # the shared subscription deals them out to both workers.
        devices = [f"pg-cam-{n}" for n in range(20)]
        for device in devices:
            message = FeatureMessage(device, 1, time.time(), featurizer.model_id, vector)
            client.publish(features_topic(device), encode(message), qos=1).wait_for_publish(5)
        wait_for(lambda: all(rdb.llen(matches_key(d)) for d in devices), timeout=30)
        answered = {m.item_id for d in devices for r in records(rdb, d) for m in r.matches}
        assert answered and "coffee" not in answered
    finally:
        client.disconnect()
        client.loop_stop()
        rdb.close()
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)
    for log in logs:  # both answered some of them, from the catalog without the item
        received = re.search(r"worker stopped: \{'received': (\d+)", log.read_text())
        assert received and int(received.group(1)) > 0
    # The web app, both workers and the sample catalog shared this data dir: nothing of
    # the catalog went to SQLite.
    assert not list(web_settings.data_dir.rglob("catalog*.sqlite3*"))
