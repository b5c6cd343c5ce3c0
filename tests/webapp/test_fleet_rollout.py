"""A model rolled out end to end: real mosquitto and Redis, the web app serving the model
files over HTTPS (a local CA), a worker, and two `edgelens device run` processes that learn
of the new model from the broker, download it from the web app with their own credentials,
checking its certificate, and switch."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import cv2
import redis
from pydantic import AnyUrl

from edgelens.broker.accounts import BrokerAccounts
from edgelens.catalog.augment import DEFAULT_RECIPE
from edgelens.catalog.ingest import reindex
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.worker import Worker
from edgelens.demo.runner import build_sample_catalog
from edgelens.featurizer.manifest import artefact_paths
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import load_photo
from edgelens.testing.live import records, wait_for
from edgelens.testing.web import ADMIN, ADMIN_PASSWORD, AdminClient, csrf_in, sign_in
from edgelens.wire.names import DEVICES_KEY, ROLLOUT_KEY
from edgelens.wire.rollout import Rollout

EDGELENS = Path(sys.executable).with_name("edgelens")
MAKE_CA = Path(__file__).resolve().parents[2] / "scripts" / "make_ca.sh"
ITEMS = ("coffee", "rocket", "clock")
DEVICES = ("shelf-1", "shelf-2")


def _running(rdb) -> dict[str, str | None]:
    return {
        device.decode(): json.loads(raw).get("model_id")
        for device, raw in rdb.hgetall(DEVICES_KEY).items()
    }


def test_two_devices_switch_to_a_rolled_out_model_and_no_message_is_refused(
    web_settings, serve, mosquitto_server, tmp_path
):
    # The server's models (the web app serves them, the worker answers with them); each
    # device starts from a copy of model A of its own.
    models = tmp_path / "server-models"
    shutil.copytree(web_settings.model_path, models)
    device_models = tmp_path / "device-models"
    shutil.copytree(web_settings.model_path, device_models)
    idle = web_settings.worker.model_copy(update={"model_poll_s": 0.3})
    settings = web_settings.model_copy(
        update={"models_dir": models, "mqtt_url": AnyUrl(mosquitto_server.url), "worker": idle}
    )
    old = Featurizer.from_models_dir(models, "fp32", "rgem", providers=["cpu"])
    new = Featurizer.from_models_dir(models, "fp32", "gap", providers=["cpu"])
    build_sample_catalog(settings, old, item_ids=ITEMS)
    store = CatalogStore(settings.catalog_url)
    reindex(store=store, featurizer=new, images_dir=settings.images_dir)
    store.close()
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    for item in ITEMS:
        cv2.imwrite(str(shelf / f"{item}.png"), load_photo(item))
    accounts = BrokerAccounts(
        password_file=settings.broker_password_file, acl_file=settings.broker_acl_file
    )
    credentials = {device: accounts.enroll_device(device) for device in DEVICES}
    pki = tmp_path / "pki"
    subprocess.run(["bash", str(MAKE_CA), str(pki)], check=True, capture_output=True)
    rdb = redis.Redis.from_url(str(settings.redis_url))
    worker = Worker(settings)
    worker.start()
    devices: list[subprocess.Popen[bytes]] = []
    logs = {device: tmp_path / f"{device}.log" for device in DEVICES}
    with serve(settings, tls=pki) as web_url:
        assert web_url.startswith("https://")
        try:
            for device, account in credentials.items():
                env = {
                    **os.environ,
                    "EDGELENS_DATA_DIR": str(tmp_path / device),
                    "EDGELENS_MODELS_DIR": str(device_models),
                    "EDGELENS_MQTT_URL": account.url(mosquitto_server.url),
                    "EDGELENS_DEVICE__MODEL_SERVER_URL": web_url,
                    "EDGELENS_MQTT_TLS__CA_FILE": str(pki / "ca.crt"),  # the web app's CA
                    "NO_PROXY": "127.0.0.1",
                }
                command = [str(EDGELENS), "device", "run", "--source", str(shelf), "--loop"]
                command += ["--device-id", device, "--fps-cap", "5"]
                devices.append(subprocess.Popen(command, env=env, stderr=logs[device].open("wb")))
            wait_for(lambda: _running(rdb) == dict.fromkeys(DEVICES, old.model_id), timeout=60)

            # Model B exported under the configured name: the worker starts the rollout.
            for exported, configured in zip(
                artefact_paths(models, "fp32", "gap"), artefact_paths(models, "fp32"), strict=True
            ):
                shutil.copyfile(exported, configured)
            wait_for(lambda: _running(rdb) == dict.fromkeys(DEVICES, new.model_id), timeout=90)
            wait_for(lambda: worker.model_id == new.model_id, timeout=20)
            rollout = Rollout.from_redis(rdb.hgetall(ROLLOUT_KEY))
            assert (rollout.from_model, rollout.to_model) == (old.model_id, new.model_id)
            assert rollout.finished_by == "fleet"
            for device in DEVICES:  # the newest answers are of the new model
                wait_for(lambda d=device: records(rdb, d)[0].model_id == new.model_id)
                assert (tmp_path / device / "models" / "offered" / new.model_id).is_dir()
            stats = worker.stats.snapshot()
            assert stats.get("matched", 0) > 0
            assert "rejected_wrong_model" not in stats, "both models answered meanwhile"

            # An item added through the web app after the rollout: featurized by the new
            # model, so the workers' index has it (the old model's vectors would not count).
            with AdminClient(
                base_url=web_url,
                timeout=30,
                trust_env=False,
                verify=ssl.create_default_context(cafile=pki / "ca.crt"),
            ) as admin:
                assert sign_in(admin, ADMIN, ADMIN_PASSWORD).status_code == 303
                admin.csrf = csrf_in(admin.get("/catalog").text)
                _, png = cv2.imencode(".png", load_photo("astronaut"))  # a photo new here
                added = admin.post(
                    "/catalog/items",
                    data={"item_id": "astronaut", "name": "Astronaut print"},
                    files={"image": ("astronaut.png", png.tobytes(), "image/png")},
                )
                assert added.status_code == 303, added.text
            store = CatalogStore(settings.catalog_url)
            indexed, _ = store.vectors(new.model_id, DEFAULT_RECIPE.recipe_id, ["astronaut"])
            store.close()
            assert [item.item_id for item in indexed] == ["astronaut"]
        finally:
            for process in devices:
                process.terminate()
                process.wait(timeout=30)
            worker.stop()
            rdb.close()


def test_photos_added_during_a_rollout_are_featurized_by_both_models(web_settings, serve, tmp_path):
    """Until the fleet runs the new model, the devices still on the old one search the old
    model's index: an item added meanwhile gets vectors of both, and of the new one only
    once the rollout is finished."""
    models = tmp_path / "models"
    shutil.copytree(web_settings.model_path, models)
    settings = web_settings.model_copy(
        update={
            "models_dir": models,
            "worker": web_settings.worker.model_copy(update={"model_poll_s": 0.01}),
        }
    )
    old = Featurizer.from_models_dir(models, "fp32", "rgem", providers=["cpu"])
    new = Featurizer.from_models_dir(models, "fp32", "gap", providers=["cpu"])
    build_sample_catalog(settings, old, item_ids=ITEMS)
    rdb = redis.Redis.from_url(str(settings.redis_url))
    store = CatalogStore(settings.catalog_url)

    def models_of(item_id: str) -> set[str]:
        return {
            model
            for model in (old.model_id, new.model_id)
            if store.vectors(model, DEFAULT_RECIPE.recipe_id, [item_id])[0]
        }

    with serve(settings) as web_url, AdminClient(base_url=web_url, timeout=30) as admin:
        assert sign_in(admin, ADMIN, ADMIN_PASSWORD).status_code == 303
        admin.csrf = csrf_in(admin.get("/catalog").text)

        def add(item_id: str, photo: str) -> None:
            _, png = cv2.imencode(".png", load_photo(photo))
            added = admin.post(
                "/catalog/items",
                data={"item_id": item_id, "name": item_id},
                files={"image": (f"{item_id}.png", png.tobytes(), "image/png")},
            )
            assert added.status_code == 303, added.text

        for exported, configured in zip(
            artefact_paths(models, "fp32", "gap"), artefact_paths(models, "fp32"), strict=True
        ):
            shutil.copyfile(exported, configured)
        rollout = Rollout(old.model_id, new.model_id, time.time())
        rdb.hset(ROLLOUT_KEY, mapping=rollout.to_redis())
        time.sleep(0.05)  # the web app looks for a new export at most every model_poll_s
        add("print", "astronaut")
        assert models_of("print") == {old.model_id, new.model_id}

        rdb.hset(ROLLOUT_KEY, mapping={"finished_at": str(time.time()), "finished_by": "fleet"})
        add("moon", "moon")
        assert models_of("moon") == {new.model_id}
        logged = [item_id for _, item_id, _ in store.changes_since(0)]
        assert logged.count("print") == logged.count("moon") + 1, (
            "the old model's vectors are a change of their own, for its followers"
        )
    store.close()
    rdb.close()
