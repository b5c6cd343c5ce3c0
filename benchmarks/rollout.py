"""A model rolled out to a fleet while it publishes, against swapping the model at once.

Real mosquitto and redis-server on loopback and an in-process worker on the sample
catalog, indexed with both models (A: the exported FP32 model, regional GeM pooling; B:
the same network with global average pooling, another embedding space). Simulated
devices, each looking at one sample item, publish its vector at a steady rate and their
status; when the retained fleet offer of B arrives each one switches after a delay drawn
between ``--switch-min-s`` and ``--switch-max-s`` (its download and warm-up; the real
download is exercised by tests/device) and says so in its status. B is exported under the
configured name once every device publishes. Counted over the whole run: answers whose
best item is not the one the device looks at (searched in the wrong index), messages
refused as of a wrong model, and the time from the offer until the worker serves B alone.
The baseline is the model swapped at once (an admin finishing the rollout as it starts).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

from pydantic import AnyUrl

from benchmarks.common import common_arguments, publish
from edgelens.catalog.ingest import reindex
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.worker import Worker
from edgelens.demo.runner import build_sample_catalog
from edgelens.demo.servers import MosquittoServer, RedisServer
from edgelens.featurizer.manifest import artefact_paths
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import SAMPLE_PHOTOS, load_photo
from edgelens.settings import Settings
from edgelens.testing.live import records
from edgelens.wire.features import FeatureMessage, encode
from edgelens.wire.mqtt import connect_async, make_client
from edgelens.wire.names import FLEET_MODEL_TOPIC, ROLLOUT_KEY, features_topic, status_topic
from edgelens.wire.rollout import ModelOffer, Rollout
from edgelens.wire.status import DeviceStatus

logger = logging.getLogger(__name__)


class SimulatedDevice(threading.Thread):
    """Publishes one item's vector of the model it runs; switches when offered B."""

    def __init__(self, name, item_id, vectors, mqtt_url, rate, delay_s, stop) -> None:
        super().__init__(name=name, daemon=True)
        self.device_id, self.item_id, self._vectors = name, item_id, vectors
        self.model_id = next(iter(vectors))
        self._rate, self._delay_s, self._halt = rate, delay_s, stop
        self.offered_at: float | None = None
        self.sent = 0
        self._client = make_client(mqtt_url, client_id=name)
        self._client.on_connect = lambda c, *a: c.subscribe(FLEET_MODEL_TOPIC, qos=1)
        self._client.on_message = self._offered
        connect_async(self._client, mqtt_url)

    def _offered(self, _client, _userdata, message) -> None:
        offer = ModelOffer.from_json(message.payload)
        if offer.model_id != self.model_id and offer.model_id in self._vectors:
            self.offered_at = self.offered_at or time.time()
            threading.Timer(self._delay_s, self._switch, args=(offer.model_id,)).start()

    def _switch(self, model_id: str) -> None:
        self.model_id = model_id
        self._say_status()

    def _say_status(self) -> None:
        status = DeviceStatus(
            state="online", device_id=self.device_id, model_id=self.model_id, ts=time.time()
        )
        payload = status.model_dump_json(exclude_none=True)
        self._client.publish(status_topic(self.device_id), payload, qos=1, retain=True)

    def run(self) -> None:
        self._say_status()
        while not self._halt.wait(1.0 / self._rate):
            self.sent += 1
            model = self.model_id
            message = FeatureMessage(
                self.device_id, self.sent, time.time(), model, self._vectors[model]
            )
            self._client.publish(features_topic(self.device_id), encode(message), qos=0)
        self._client.disconnect()
        self._client.loop_stop()


def _run(args, settings, models, featurizers, redis_url, mqtt_url, *, at_once: bool) -> dict:
    """One rollout: returns its counts and times."""
    import redis

    rdb = redis.Redis.from_url(redis_url)
    rdb.flushall()
    _clear_offer(mqtt_url)  # the last run's retained offer
    for new, configured in zip(  # model A configured again
        artefact_paths(models.parent / "model-a", "fp32"),
        artefact_paths(models, "fp32"),
        strict=True,
    ):
        shutil.copyfile(new, configured)
    worker = Worker(settings)
    worker.start()
    stop = threading.Event()
    rng = random.Random(1)
    photos = SAMPLE_PHOTOS[: args.devices]
    vectors = {
        p.item_id: {f.model_id: f.embed([load_photo(p.loader)])[0] for f in featurizers}
        for p in photos
    }
    devices = [
        SimulatedDevice(
            f"sim-{n:02d}",
            photos[n % len(photos)].item_id,
            vectors[photos[n % len(photos)].item_id],
            mqtt_url,
            args.rate,
            rng.uniform(args.switch_min_s, args.switch_max_s),
            stop,
        )
        for n in range(args.devices)
    ]
    for device in devices:
        device.start()
    time.sleep(2.0)  # every device publishing on model A
    for new, configured in zip(  # model B exported under the configured name
        artefact_paths(models, "fp32", "gap"), artefact_paths(models, "fp32"), strict=True
    ):
        shutil.copyfile(new, configured)
    new_model = featurizers[1].model_id
    deadline = time.monotonic() + 60
    while worker.health()[1]["rollout_to"] != new_model and worker.model_id != new_model:
        assert time.monotonic() < deadline, "the rollout did not start"
        time.sleep(0.05)
    if at_once:
        rdb.hset(ROLLOUT_KEY, mapping={"finished_at": str(time.time()), "finished_by": "bench"})
    while worker.model_id != new_model:
        assert time.monotonic() < deadline, "the rollout did not finish"
        time.sleep(0.05)
    rollout = Rollout.from_redis(rdb.hgetall(ROLLOUT_KEY))
    time.sleep(2.0)  # the fleet keeps publishing on B
    stop.set()
    for device in devices:
        device.join(timeout=5)
    time.sleep(1.0)  # the last answers reach Redis
    worker.stop()
    wrong = answered = 0
    for device in devices:
        for record in records(rdb, device.device_id):
            answered += 1
            wrong += not record.matches or record.matches[0].item_id != device.item_id
    stats = worker.stats.snapshot()
    rdb.close()
    offered = min(d.offered_at for d in devices if d.offered_at) if not at_once else None
    return {
        "sent": sum(d.sent for d in devices),
        "answered": answered,
        "wrong": wrong,
        "refused": stats.get("rejected_wrong_model", 0),
        "fleet_s": (rollout.finished_at - offered) if offered and rollout.finished_at else None,
    }


def _clear_offer(mqtt_url: str) -> None:
    client = make_client(mqtt_url, client_id="bench-clear")
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    connect_async(client, mqtt_url)
    connected.wait(10)
    client.publish(FLEET_MODEL_TOPIC, b"", qos=1, retain=True).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5.0, help="messages/s per device")
    parser.add_argument("--switch-min-s", type=float, default=0.5)
    parser.add_argument("--switch-max-s", type=float, default=4.0)
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as rds, MosquittoServer() as mqtt:
        models = Path(tmp) / "models"
        shutil.copytree(args.models_dir, models)
        (models.parent / "model-a").mkdir()
        for kept, configured in zip(  # model A, kept aside to configure it again per run
            artefact_paths(models.parent / "model-a", "fp32"),
            artefact_paths(models, "fp32"),
            strict=True,
        ):
            shutil.copyfile(configured, kept)
        os.environ["EDGELENS_DATA_DIR"] = str(Path(tmp) / "data")
        os.environ["EDGELENS_MODELS_DIR"] = str(models)
        os.environ["EDGELENS_FEATURIZER__PROVIDERS"] = '["cpu"]'
        settings = Settings().model_copy(
            update={"redis_url": AnyUrl(rds.url), "mqtt_url": AnyUrl(mqtt.url)}
        )
        settings = settings.model_copy(
            update={"worker": settings.worker.model_copy(update={"model_poll_s": 0.2})}
        )
        featurizers = [
            Featurizer.from_models_dir(models, "fp32", pooling, providers=["cpu"])
            for pooling in ("rgem", "gap")
        ]
        build_sample_catalog(settings, featurizers[0])
        store = CatalogStore(settings.catalog_url)
        reindex(store=store, featurizer=featurizers[1], images_dir=settings.images_dir)
        store.close()
        runs = {
            "model swapped at once (baseline)": _run(
                args, settings, models, featurizers, rds.url, mqtt.url, at_once=True
            ),
            "rollout (both indexes until the fleet switched)": _run(
                args, settings, models, featurizers, rds.url, mqtt.url, at_once=False
            ),
        }
    rows = [
        f"| {name} | {r['sent']:,} | {r['answered']:,} | {r['wrong']} | {r['refused']:,} "
        f"| {_seconds(r['fleet_s'])} |"
        for name, r in runs.items()
    ]
    body = "\n".join(
        [
            "## Model rollout across a fleet",
            "",
            f"{args.devices} simulated devices at {args.rate:g} messages/s each, switching "
            f"{args.switch_min_s:g}-{args.switch_max_s:g} s after the offer; model A "
            "(FP32, regional GeM) to model B (FP32, global average pooling: another "
            "embedding space); the sample catalog indexed with both.",
            "",
            "| how | messages sent | answered | answered by the wrong index | refused as "
            "a wrong model | offer until the fleet runs B and the worker serves B alone |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    publish("rollout", body, write=not args.no_write)


if __name__ == "__main__":
    main()
