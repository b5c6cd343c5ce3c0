"""A model rolled out across the fleet: both models' indexes answer, each message in its
own model's, until every device runs the new model or an admin finishes the rollout."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from edgelens.catalog.ingest import reindex
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.worker import Worker
from edgelens.featurizer.manifest import artefact_paths
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import load_photo
from edgelens.testing.live import records, send_features, wait_for
from edgelens.wire.mqtt import make_client
from edgelens.wire.names import FLEET_MODEL_TOPIC, ROLLOUT_KEY, matches_key, status_topic
from edgelens.wire.rollout import ModelOffer, Rollout
from edgelens.wire.status import DeviceStatus


@pytest.fixture
def fleet(live_settings, tmp_path, publisher, rdb):
    """A worker serving the sample catalog's model A, two devices saying they run it, and
    model B exported under the configured name and indexed (the catalog holds both)."""
    models = tmp_path / "models"
    shutil.copytree(live_settings.model_path, models)
    # The test drives the model watcher's steps itself: its own thread stays idle.
    idle = live_settings.worker.model_copy(update={"model_poll_s": 3600.0})
    settings = live_settings.model_copy(update={"models_dir": models, "worker": idle})
    old = Featurizer.from_models_dir(models, "fp32", "rgem", providers=["cpu"])
    worker = Worker(settings)
    worker.start()
    wait_for(worker.subscribed.is_set)
    for device in ("cam-a", "cam-b"):
        _say_running(publisher, device, old.model_id)
    wait_for(lambda: rdb.hlen("edgelens:devices") == 2)
    # Model B: another embedding space (global average pooling), exported as the configured.
    for new, configured in zip(
        artefact_paths(models, "fp32", "gap"), artefact_paths(models, "fp32"), strict=True
    ):
        shutil.copyfile(new, configured)
    new = Featurizer.from_models_dir(models, "fp32", "rgem", providers=["cpu"])
    assert new.model_id != old.model_id
    store = CatalogStore(settings.catalog_url)
    reindex(store=store, featurizer=new, images_dir=settings.images_dir)
    store.close()
    yield worker, old, new
    worker.stop()


def _say_running(publisher, device: str, model_id: str) -> None:
    status = DeviceStatus(state="online", device_id=device, model_id=model_id, ts=time.time())
    payload = status.model_dump_json(exclude_none=True)
    publisher.publish(status_topic(device), payload, qos=1, retain=True).wait_for_publish(5)


def _offer_seen(mqtt_url: str) -> ModelOffer:
    """The retained fleet offer, as a device connecting now reads it."""
    got: list[bytes] = []
    arrived = threading.Event()
    client = make_client(mqtt_url, client_id="offer-reader")
    client.on_connect = lambda c, *a: c.subscribe(FLEET_MODEL_TOPIC, qos=1)
    client.on_message = lambda c, u, message: (got.append(message.payload), arrived.set())
    host, port = mqtt_url.rsplit("/", 1)[-1].rsplit(":", 1)
    client.connect(host, int(port))
    client.loop_start()
    try:
        assert arrived.wait(10), "no retained offer"
    finally:
        client.disconnect()
        client.loop_stop()
    return ModelOffer.from_json(got[0])


def _answers(rdb, device: str) -> list[str]:
    return [r.matches[0].item_id for r in records(rdb, device) if r.matches]


def test_both_models_answer_until_the_whole_fleet_runs_the_new_one(
    fleet, publisher, rdb, live_settings
):
    worker, old, new = fleet
    assert worker.swap_model_if_changed() is True, "the rollout starts"
    assert worker.model_id == old.model_id and worker.health()[1]["rollout_to"] == new.model_id
    assert _offer_seen(str(live_settings.mqtt_url)).model_id == new.model_id
    rollout = Rollout.from_redis(rdb.hgetall(ROLLOUT_KEY))
    assert (rollout.from_model, rollout.to_model, rollout.finished_at) == (
        old.model_id,
        new.model_id,
        None,
    )

    clock = load_photo("clock")
    send_features(publisher, old, clock, device="cam-a", seq=1)  # not switched yet
    send_features(publisher, new, clock, device="cam-b", seq=1)  # switched
    wait_for(lambda: rdb.llen(matches_key("cam-a")) and rdb.llen(matches_key("cam-b")))
    assert _answers(rdb, "cam-a") == ["clock"] and _answers(rdb, "cam-b") == ["clock"]
    assert not any(k.startswith("rejected") for k in worker.stats.snapshot())

    _say_running(publisher, "cam-b", new.model_id)
    time.sleep(0.5)  # the status is recorded
    assert worker.swap_model_if_changed() is False, "cam-a still runs the old model"
    _say_running(publisher, "cam-a", new.model_id)
    wait_for(worker.swap_model_if_changed)
    assert worker.model_id == new.model_id and worker.health()[1]["rollout_to"] is None
    assert Rollout.from_redis(rdb.hgetall(ROLLOUT_KEY)).finished_by == "fleet"
    send_features(publisher, old, clock, device="cam-a", seq=2)  # an old vector now: refused
    wait_for(lambda: worker.stats.snapshot().get("rejected_wrong_model", 0) == 1)


def test_an_admin_finishes_a_rollout_a_device_holds_up(fleet, rdb):
    worker, _, new = fleet
    assert worker.swap_model_if_changed() is True
    assert worker.swap_model_if_changed() is False, "both devices still run the old model"
    rdb.hset(ROLLOUT_KEY, mapping={"finished_at": str(time.time()), "finished_by": "ann"})
    assert worker.swap_model_if_changed() is True
    assert worker.model_id == new.model_id and worker.index.model_id == new.model_id


def test_a_worker_started_during_a_rollout_serves_both_models_too(
    fleet, publisher, rdb, live_settings, tmp_path, caplog
):
    """A worker (re)started mid-rollout, after the new model took the old one's file name:
    it serves the old model's index again from the rollout record, so a device that has
    not switched yet is still answered; the old model's view is not featurized with the
    new model's file."""
    worker, old, new = fleet
    assert worker.swap_model_if_changed() is True
    settings = live_settings.model_copy(
        update={
            "models_dir": tmp_path / "models",
            "worker": live_settings.worker.model_copy(update={"model_poll_s": 3600.0}),
        }
    )
    started = Worker(settings)
    started.start()
    try:
        wait_for(started.subscribed.is_set)
        assert started.model_id == old.model_id
        assert started.health()[1]["rollout_to"] == new.model_id
        assert f"{old.model_id} will not be featurized" in caplog.text
        clock = load_photo("clock")
        for seq in (5, 6, 7, 8):  # the two workers share the subscription: each gets some
            send_features(publisher, old, clock, device="cam-a", seq=seq)
            send_features(publisher, new, clock, device="cam-b", seq=seq)
        wait_for(
            lambda: rdb.llen(matches_key("cam-a")) == 4 and rdb.llen(matches_key("cam-b")) == 4
        )
        assert _answers(rdb, "cam-a") == ["clock"] * 4 and _answers(rdb, "cam-b") == ["clock"] * 4
        for each in (worker, started):
            assert not any(k.startswith("rejected") for k in each.stats.snapshot())
    finally:
        started.stop()
