"""Model downloads for a device's own credentials, and the rollout on the dashboard."""

from __future__ import annotations

import hashlib
import json
import re
import time

import httpx
import redis

from edgelens.broker.accounts import BrokerAccounts
from edgelens.featurizer.manifest import artefact_paths, load_manifest
from edgelens.wire.names import DEVICES_KEY, ROLLOUT_KEY
from edgelens.wire.rollout import Rollout


def _enrolled(settings, device_id: str):
    accounts = BrokerAccounts(
        password_file=settings.broker_password_file, acl_file=settings.broker_acl_file
    )
    return accounts.enroll_device(device_id)


def test_a_device_downloads_a_model_with_its_own_credentials(web_settings, live_url):
    device = _enrolled(web_settings, "cam-1")
    manifest = load_manifest(web_settings.model_path, "int8")
    base = f"{live_url}/models/{manifest.model_id}"
    with httpx.Client(trust_env=False, timeout=30) as client:
        assert client.get(f"{base}/manifest").status_code == 401
        wrong = client.get(f"{base}/manifest", auth=("cam-1", device.password + "x"))
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic")
        assert client.get(f"{base}/onnx", auth=("cam-2", device.password)).status_code == 401
        auth = (device.username, device.password)
        served = client.get(f"{base}/manifest", auth=auth)
        assert served.status_code == 200 and served.json() == manifest.to_dict()
        onnx = client.get(f"{base}/onnx", auth=auth)
        assert onnx.status_code == 200
        assert hashlib.sha256(onnx.content).hexdigest() == manifest.onnx_sha256
        onnx_path, _ = artefact_paths(web_settings.model_path, "int8")
        assert onnx.content == onnx_path.read_bytes()
        missing = client.get(f"{live_url}/models/no-such-model/onnx", auth=auth)
        assert missing.status_code == 404 and "no exported model" in missing.text


def test_the_dashboard_shows_a_rollout_and_an_admin_finishes_it(web_settings, http, anonymous):
    rdb = redis.Redis.from_url(str(web_settings.redis_url))
    statuses = {
        "cam-1": {"state": "online", "device_id": "cam-1", "model_id": "model-b"},
        "cam-2": {"state": "online", "device_id": "cam-2", "model_id": "model-a"},
        "cam-3": {
            "state": "online",
            "device_id": "cam-3",
            "model_id": "model-a",
            "model_problem": "download failed: the file's sha256 differs from the manifest",
        },
    }
    rdb.hset(DEVICES_KEY, mapping={k: json.dumps(v) for k, v in statuses.items()})
    rdb.hset(ROLLOUT_KEY, mapping=Rollout("model-a", "model-b", time.time()).to_redis())
    page = http.get("/").text
    assert "switching from model <code>model-a</code> to <code>model-b</code>" in page
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "1 of 3 run the new model" in text
    assert "cam-3 could not switch: download failed" in text

    assert anonymous.post("/rollout/finish").status_code in (401, 403), "admins only"
    finished = http.post("/rollout/finish", headers={"X-CSRF-Token": http.csrf})
    assert finished.status_code == 303
    rollout = Rollout.from_redis(rdb.hgetall(ROLLOUT_KEY))
    assert rollout.finished_at is not None and rollout.finished_by == "admin"
    assert "ended by admin" in http.get("/").text
    again = http.post("/rollout/finish", headers={"X-CSRF-Token": http.csrf})
    assert again.status_code == 409
    rdb.close()
